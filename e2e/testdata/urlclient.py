#!/usr/bin/env python3
"""A tiny HTTP client driven by the e2e tests, built on urllib.request only.

It reads one JSON request per line on stdin:
    {"method": "PUT", "url": "http://host/raw/path", "body": "<base64>" | null}
and answers one JSON line on stdout:
    {"status": 200, "headers": [[name, value], ...], "body": "<base64>"}
or {"error": "..."} when no HTTP answer came back.

The URL is used exactly as given (urllib does not re-escape it); the proxy
comes from the HTTP_PROXY environment variable, as for any urllib app. The
first line written is {"proxies": {...}} so the test can check that urllib
really picked the proxy up.
"""
import base64
import json
import sys
import urllib.error
import urllib.request


def main():
    opener = urllib.request.build_opener()  # ProxyHandler() from the environment
    print(json.dumps({"proxies": urllib.request.getproxies()}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        body = req.get("body")
        data = base64.b64decode(body) if body is not None else None
        r = urllib.request.Request(req["url"], data=data, method=req["method"])
        try:
            try:
                with opener.open(r, timeout=60) as resp:
                    status, headers, payload = resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as e:
                status, headers, payload = e.code, e.headers, e.read()
            out = {
                "status": status,
                "headers": [[k, v] for k, v in headers.items()],
                "body": base64.b64encode(payload).decode("ascii"),
            }
        except Exception as e:  # noqa: BLE001 - report any failure to the test
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
