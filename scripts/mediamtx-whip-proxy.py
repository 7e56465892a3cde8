#!/usr/bin/env python3
# A WHIP/WHEP path-mapping HTTP proxy, for benching MediaMTX with
# `whipgate bench -server` (BENCHMARKS.md, "Viewers without GRO"):
#   python3 scripts/mediamtx-whip-proxy.py 18080 http://127.0.0.1:8889
# maps /whip/S to /S/whip and /whep/S/L to /S/whep; anything else (the
# session URLs) passes as is. Signalling only: media goes to MediaMTX.
import http.server, sys, urllib.request, urllib.error, re
target = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def fwd(self):
        p = self.path
        m = re.match(r'^/whip/([^/?]+)$', p)
        if m: p = '/%s/whip' % m.group(1)
        m = re.match(r'^/whep/([^/?]+)(/[^/?]+)?$', p)
        if m: p = '/%s/whep' % m.group(1)
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n else None
        req = urllib.request.Request(target + p, data=body, method=self.command)
        for k, v in self.headers.items():
            if k.lower() not in ('host', 'content-length', 'connection'):
                req.add_header(k, v)
        try:
            r = urllib.request.urlopen(req, timeout=10)
            code, hdrs, data = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            code, hdrs, data = e.code, e.headers, e.read()
        self.send_response(code)
        for k, v in hdrs.items():
            if k.lower() not in ('content-length', 'connection', 'transfer-encoding', 'date', 'server'):
                self.send_header(k, v)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_POST = do_PATCH = do_DELETE = do_OPTIONS = fwd
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
