// The Node.js peer: the seed's claim ("FastAPI is as fast as Node.js") tested on the same box.
//
// Theory of operation: node's own `http` module, no framework, one process (one event
// loop -- the same shape as one uvicorn worker), answering the two contract routes that
// need no store: GET /plaintext (exactly "Hello, World!", text/plain) and GET /json
// ({"message": "Hello, World!"}), and 404 {"detail": "Not Found"} for anything else,
// so the quick endpoint check applies to it as to any layer.  It sets Content-Length,
// as our layers' responses do, so node does not fall back to chunked encoding.
//
// Run: node node_peer.js [PORT] [HOST] -- prints "layercake: serving on http://HOST:PORT"
// to stderr once listening (port 0 picks a free one); exits on SIGTERM/SIGINT.
"use strict";
const http = require("http");

const port = Number(process.argv[2] || 0);
const host = process.argv[3] || "127.0.0.1";
const PLAIN = Buffer.from("Hello, World!");
const NOT_FOUND = Buffer.from(JSON.stringify({ detail: "Not Found" }));

const server = http.createServer((req, res) => {
  const path = req.url.split("?", 1)[0];
  if (req.method === "GET" && path === "/plaintext") {
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": PLAIN.length });
    res.end(PLAIN);
  } else if (req.method === "GET" && path === "/json") {
    // Encoded per request, as the Python layers encode theirs: that work is part of the route.
    const body = Buffer.from(JSON.stringify({ message: "Hello, World!" }));
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": body.length });
    res.end(body);
  } else {
    res.writeHead(404, { "Content-Type": "application/json", "Content-Length": NOT_FOUND.length });
    res.end(NOT_FOUND);
  }
});

server.keepAliveTimeout = 65000; // never close a benchmark's idle keep-alive connection mid-run
server.listen(port, host, () => {
  const a = server.address();
  process.stderr.write(`layercake: serving on http://${a.address}:${a.port}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // idle keep-alive sockets would hold close() open
  });
}
