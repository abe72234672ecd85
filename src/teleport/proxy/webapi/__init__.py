"""The web UI's side of the proxy's HTTPS listener: browser sessions, the node list, the browser
terminal and the single-page app's files. proxy/web.py assembles these with tsh's login routes."""
