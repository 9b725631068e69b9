"""``rt-dtgan web``: one page in the browser, its camera sent over WebRTC (aiortc), driving a
portrait through the same frame loop as ``rt-dtgan live`` (``pipeline.run_frames``), the
animated portrait sent back. ``bridge`` turns WebRTC frames into a Capture and a Sink,
``session`` runs one browser's stream, ``portraits`` checks uploads, ``security`` holds the
token and the certificate, ``server`` the aiohttp application. The page is in ``static/``.
"""
