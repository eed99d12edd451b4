package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// WebSocket (RFC 6455) through signet: the GET that asks for the upgrade is
// routed and signed like any other request (in headers, or presigned in the
// query for AWS IoT Core's /mqtt, see signer.PresignedScope), with
// Connection and Upgrade put back only after signing, since they are
// hop-by-hop. When the upstream answers 101, the client's connection is
// taken over and joined to the upstream's, both ways, until either side
// closes; those relays are tracked with the CONNECT tunnels so that
// shutdown drains them.
//
// Only HTTP/1.1 carries an upgrade. WebSocket over HTTP/2 (RFC 8441's
// extended CONNECT with :protocol) is not supported: a client that
// negotiated h2 inside an intercepted tunnel sends such a request as an
// ordinary one. WebSocket clients offer only http/1.1 by ALPN, so this is
// what they get.

// wsProtocol is the Upgrade token of WebSocket.
const wsProtocol = "websocket"

// isWebSocketUpgrade reports whether a client request asks to switch to
// WebSocket: an HTTP/1.1 GET whose Connection names upgrade and whose
// Upgrade names websocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.Method == http.MethodGet &&
		hasToken(r.Header["Connection"], "upgrade") && hasToken(r.Header["Upgrade"], wsProtocol)
}

// askUpgrade puts the upgrade headers on a signed outgoing request. It runs
// after signing: the signature covers end-to-end headers only, and an
// intermediary may rewrite hop-by-hop ones.
func askUpgrade(out *http.Request) {
	out.Header["Connection"] = []string{"Upgrade"}
	out.Header["Upgrade"] = []string{wsProtocol}
}

// switchProtocols completes an upgrade the upstream accepted: it hands the
// upstream's 101 to the client on the client's own connection, then relays
// bytes both ways. The upstream may only switch to what was asked for.
//
// The relayed bytes are recorded in ex as the request's body bytes.
func (s *Server) switchProtocols(w http.ResponseWriter, out *http.Request, resp *http.Response, ex *exchange) error {
	upstream, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		_ = resp.Body.Close()
		return errors.New("upstream answered 101 but its connection cannot be taken over")
	}
	if !hasToken(out.Header["Upgrade"], wsProtocol) || !hasToken(resp.Header["Upgrade"], wsProtocol) {
		_ = upstream.Close()
		return &proxyError{status: http.StatusBadGateway, code: codeUpstreamFailed,
			message: "the upstream switched to protocol " + strconv.Quote(resp.Header.Get("Upgrade")) + ", which the client did not ask for"}
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = upstream.Close()
		return &proxyError{status: http.StatusNotImplemented, code: codeBadRequest,
			message: "this connection cannot switch protocols", fix: "send WebSocket upgrades over HTTP/1.1", cause: err}
	}
	protocolSwitched(conn)
	// The server's deadlines were for reading a request; a WebSocket
	// session lasts as long as its ends want.
	_ = conn.SetDeadline(time.Time{})
	h := make(http.Header, len(resp.Header)+2)
	copyEndToEnd(h, resp.Header, nil)
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = []string{wsProtocol}
	ex.status = http.StatusSwitchingProtocols
	if err := writeSwitch(brw.Writer, h); err != nil {
		_ = conn.Close()
		_ = upstream.Close()
		return fmt.Errorf("answer upgrade: %w", err)
	}
	client := bufferedConn(conn, brw.Reader)
	ex.bytesIn, ex.bytesOut = s.tunnels.run(client, upstream, client)
	return nil
}

// writeSwitch writes a 101 answer with h. Header.Write drops line breaks
// in values, so an upstream cannot inject lines.
func writeSwitch(bw *bufio.Writer, h http.Header) error {
	if _, err := bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n"); err != nil {
		return err
	}
	if err := h.Write(bw); err != nil {
		return err
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// bufferedConn returns conn, reading first whatever the server had already
// read from it into br: bytes a client sent right after its CONNECT or
// upgrade request, without waiting for the answer.
func bufferedConn(conn net.Conn, br *bufio.Reader) net.Conn {
	if n := br.Buffered(); n > 0 {
		return &prefixConn{Conn: conn, r: io.MultiReader(io.LimitReader(br, int64(n)), conn)}
	}
	return conn
}
