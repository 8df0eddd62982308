"""labor annotate: a person answers a selection in a browser (the stage is labor_cli/stages/annotate.py).

- ``store``: the items (points, or regions grouped by labor_cli/regions.py) and the answers, kept in an
  append-only journal beside the output so nothing is lost;
- ``server``: the local HTTP server (standard library) that serves the page, the images and the answer API;
- ``static/``: the page itself, plain HTML, CSS and JavaScript with no build step.
"""
