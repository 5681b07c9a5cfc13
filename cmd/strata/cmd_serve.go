package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/stratahq/strata/serve"
)

func init() {
	var listen string
	var writeIndex bool
	register(&command{
		name:    "serve",
		summary: "serve a directory of profiles, images and datasets over HTTP (with range requests and a profile index)",
		usage:   "DIR",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", ":8080", "address to listen on")
			fs.BoolVar(&writeIndex, "write-index", false, "write DIR/strata/profiles.json for another HTTP server, and exit")
		},
		run: func(e *env, args []string) error {
			if len(args) != 1 {
				return usagef("name the directory to serve")
			}
			dir := args[0]
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			if writeIndex {
				return serve.WriteIndex(dir)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			logger := log.New(e.stderr, "", log.LstdFlags)
			fmt.Fprintf(e.stdout, "strata serve: %s on http://%s (profile index at %s)\n", dir, ln.Addr(), serve.IndexPath)
			srv := &http.Server{Handler: serve.Handler(dir, logger.Printf), ReadHeaderTimeout: 10 * time.Second}
			return srv.Serve(ln)
		},
	})
}
