from labor_cli.cli import main

main()
