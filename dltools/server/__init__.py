"""``dltools serve``: trained models over HTTP (FastAPI), with a web page to try them."""
