package creds

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
)

// Transport sends an https request through a transport that trusts only
// the CA certificates of the ca-file the store names for its URL, and every
// other request through base (the live system's CAs). A nil store sends
// everything through base. Used by the datasets and the base image alike.
func (s *Store) Transport(base *http.Transport) http.RoundTripper {
	if s == nil {
		return base
	}
	return &caTransport{base: base, creds: s}
}

type caTransport struct {
	base  *http.Transport
	creds *Store
	mu    sync.Mutex
	byCA  map[string]*http.Transport // by ca-file path
}

func (c *caTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return c.base.RoundTrip(req)
	}
	e := c.creds.Lookup(req.URL.String()).CAFile
	if e == nil {
		return c.base.RoundTrip(req)
	}
	t, err := c.transport(e)
	if err != nil {
		req.Body.Close()
		return nil, err
	}
	return t.RoundTrip(req)
}

func (c *caTransport) transport(e *Entry) (*http.Transport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.byCA[e.Path]; ok {
		return t, nil
	}
	pool, err := loadCAs(e.Path)
	if err != nil {
		return nil, fmt.Errorf("%s line %d: ca-file for %s: %w", c.creds.Source, e.Line, e.Prefix, err)
	}
	t := c.base.Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c.byCA == nil {
		c.byCA = map[string]*http.Transport{}
	}
	c.byCA[e.Path] = t
	return t, nil
}

func (c *caTransport) CloseIdleConnections() {
	c.base.CloseIdleConnections()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.byCA {
		t.CloseIdleConnections()
	}
}

// loadCAs reads a PEM file of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// ExplainTLS adds what to do to a certificate the live system does not trust.
func ExplainTLS(err error) error {
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) || strings.Contains(err.Error(), "certificate signed by unknown authority") {
		return fmt.Errorf("%w (%s)", err, UntrustedHint)
	}
	return err
}
