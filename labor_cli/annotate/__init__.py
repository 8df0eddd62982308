"""labor annotate: a person answers a selection in a browser (the stage is labor_cli/stages/annotate.py).

- ``regions``: the connected regions of an image's selected pixels (SPL selections are answered per region);
- ``store``: the answers, kept in an append-only journal beside the output so nothing is lost;
- ``server``: the local HTTP server (standard library) that serves the page, the images and the answer API;
- ``static/``: the page itself, plain HTML, CSS and JavaScript with no build step.
"""
