from labor_cli import main

main()
