// The Go peer: the seed's claim ("as fast as Node.js or Go") tested on the same box.
//
// Theory of operation: Go's own net/http, no framework, answering the two contract routes
// that need no store -- GET /plaintext (exactly "Hello, World!", text/plain) and GET /json
// ({"message": "Hello, World!"}) -- and 404 {"detail": "Not Found"} for anything else, so
// the quick endpoint check applies to it as to any layer and to the Node.js peer.  It sets
// Content-Length, as our layers do, so net/http never falls back to chunked encoding.
//
// Unlike one uvicorn worker or one node process, net/http serves every connection on its
// own goroutine and the Go scheduler spreads goroutines over GOMAXPROCS threads -- all the
// CPUs the process may use.  The benchmark pins the peer to one CPU like every server
// (runner.py), and Go reads the affinity mask at start, so it runs on one core here too.
//
// Built on first use into a cache directory (layercake/bench/go_build.py); run:
// go-peer [PORT] [HOST] -- prints "layercake: serving on http://HOST:PORT" to stderr once
// listening (port 0 picks a free one); exits on SIGTERM/SIGINT.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

var plain = []byte("Hello, World!")
var notFound = []byte(`{"detail": "Not Found"}`)

func handle(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/plaintext":
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", strconv.Itoa(len(plain)))
		w.WriteHeader(http.StatusOK)
		w.Write(plain)
	case r.Method == http.MethodGet && r.URL.Path == "/json":
		// Encoded per request, as the Python layers encode theirs: that work is part of the route.
		body, _ := json.Marshal(map[string]string{"message": "Hello, World!"})
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	default:
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(notFound)))
		w.WriteHeader(http.StatusNotFound)
		w.Write(notFound)
	}
}

func main() {
	port, host := "0", "127.0.0.1"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if len(os.Args) > 2 {
		host = os.Args[2]
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "layercake: cannot listen:", err)
		os.Exit(1)
	}
	// IdleTimeout as node's keepAliveTimeout in node_peer.js: never close a benchmark's idle connection mid-run.
	srv := &http.Server{Handler: http.HandlerFunc(handle), IdleTimeout: 65 * time.Second}
	fmt.Fprintf(os.Stderr, "layercake: serving on http://%s\n", ln.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "layercake:", err)
		os.Exit(1)
	}
}
