"""``latentctl explore``: the Latent Compass in the browser.

``api`` is the library (requests in, images, entries and reproducing commands out; no web
framework), ``server`` wraps it in a token-guarded Starlette app served by uvicorn, and
``static/`` is the one page. Only ``server`` imports starlette.
"""
