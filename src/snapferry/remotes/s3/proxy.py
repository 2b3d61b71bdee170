"""Which forward proxy a request takes: the one botocore would choose, so that every request
of a run, ours or botocore's, takes the same route.

botocore (utils.get_environ_proxies, httpsession.ProxyConfiguration) asks
urllib.request: no proxy when `proxy_bypass(netloc)` says so (NO_PROXY/no_proxy: a
host, a domain suffix, host:port, or `*`), else `getproxies()[scheme]`: HTTP_PROXY
for http:// URLs, HTTPS_PROXY for https:// ones, the lower-case spelling winning
over the upper-case one, HTTP_PROXY ignored under CGI (REQUEST_METHOD set), a proxy
without a scheme taken as http://. ALL_PROXY is not used, as botocore does not.
"""

from __future__ import annotations

import os
import socket
import urllib.parse


def any_set() -> bool:
    """Whether any *_proxy variable (any case) is set: without one, every request goes direct."""
    return any(name.lower().endswith("_proxy") for name in os.environ)


def proxy_for(url: str) -> str | None:
    """The proxy URL for `url`, or None to go direct."""
    if not any_set():  # the common case: no import, no parsing
        return None
    from urllib.request import getproxies, proxy_bypass

    split = urllib.parse.urlsplit(url)
    try:
        if proxy_bypass(split.netloc):
            return None
    except (TypeError, socket.gaierror):
        pass
    proxy = getproxies().get(split.scheme)
    if not proxy:
        return None
    if proxy.startswith(("http:", "https:")):
        return proxy
    return "http:" + proxy if proxy.startswith("//") else "http://" + proxy


def proxy_headers(proxy: str) -> dict[str, str]:
    """Basic authentication from the proxy URL's user and password, as botocore sends it."""
    import base64

    split = urllib.parse.urlsplit(proxy)
    if not split.username or split.password is None:
        return {}
    user, password = urllib.parse.unquote(split.username), urllib.parse.unquote(split.password)
    if not user or not password:
        return {}
    token = base64.b64encode(f"{user}:{password}".encode("ascii")).decode()
    return {"Proxy-Authorization": f"Basic {token}"}
