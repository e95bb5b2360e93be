#!/usr/bin/env python3
"""Complete sign-in flows against the app and the test provider, like a browser without JS.

    signin.py APP_URL PROVIDER_URL cookie            -> prints a session cookie value for alice
    signin.py APP_URL PROVIDER_URL flows N CONC      -> N complete sign-ins with CONC workers;
                                                        prints flows/s and the app's own /callback
                                                        time (Server-Timing app - provider) p50/p99 in ms
Standard library only.
"""
import http.cookiejar
import re
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request

COOKIE = "logto_signin_session"


class RecordingRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects and keeps the Server-Timing of every /callback response."""

    def __init__(self):
        super().__init__()
        self.callback_ms = []

    def http_error_303(self, req, fp, code, msg, headers):
        if urllib.parse.urlparse(req.full_url).path == "/callback":
            timing = headers.get("server-timing", "")
            app = re.search(r"app;dur=([0-9.]+)", timing)
            provider = re.search(r"provider;dur=([0-9.]+)", timing)
            if app and provider:
                # The app's own time: the whole request minus the wait for the provider.
                self.callback_ms.append(float(app.group(1)) - float(provider.group(1)))
        return super().http_error_303(req, fp, code, msg, headers)

    http_error_302 = http_error_303


def sign_in(app, provider, username="alice"):
    jar = http.cookiejar.CookieJar()
    redirects = RecordingRedirects()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), redirects)
    page = opener.open(f"{app}/sign-in", timeout=30).read().decode()
    action = re.search(r'action="([^"]+)"', page)
    if not action:
        raise RuntimeError("no login form at the provider")
    body = urllib.parse.urlencode({"username": username}).encode()
    home = opener.open(urllib.request.Request(provider + action.group(1), data=body), timeout=30).read().decode()
    if "Sign out" not in home:
        raise RuntimeError("sign-in did not finish on the signed-in home page")
    cookie = next((c.value for c in jar if c.name == COOKIE), None)
    return cookie, redirects.callback_ms


def flows(app, provider, total, workers):
    times, errors, lock = [], [], threading.Lock()
    counter = iter(range(total))

    def work():
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            try:
                _, ms = sign_in(app, provider)
                with lock:
                    times.extend(ms)
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(str(e))

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(round((len(times) - 1) * q)))] if times else float("nan")
    print(f"{total / elapsed:.1f} {p(0.5):.2f} {p(0.99):.2f} {len(errors)}")


if __name__ == "__main__":
    app_url, provider_url, mode = sys.argv[1:4]
    if mode == "cookie":
        print(sign_in(app_url, provider_url)[0])
    else:
        flows(app_url, provider_url, int(sys.argv[4]), int(sys.argv[5]))
