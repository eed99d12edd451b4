//go:build linux

package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const (
	iotDataHost = "abc123-ats.iot.us-east-1.amazonaws.com"
	// iotTestToken stands for a session token; '+', '/' and '=' are there
	// to be escaped.
	iotTestToken = "IQoJb3JpZ2luX2Vj+signet/e2e/session=="
)

// needMosquitto finds Debian's broker, which lives in /usr/sbin (often not
// on a user's PATH).
func needMosquitto(tb testing.TB) string {
	tb.Helper()
	if os.Getenv("SIGNETTEST_MOSQUITTO") == "" {
		if _, err := exec.LookPath("mosquitto"); err != nil {
			if st, err := os.Stat("/usr/sbin/mosquitto"); err == nil && !st.IsDir() {
				return "/usr/sbin/mosquitto"
			}
		}
	}
	return needPeer(tb, "SIGNETTEST_MOSQUITTO", "mosquitto")
}

// startMosquitto runs a real MQTT broker with a WebSocket listener on
// loopback and returns that listener's address. mosquitto 2.0 refuses to
// start with WebSocket listeners only, so it also gets a plain one.
func startMosquitto(tb testing.TB) string {
	tb.Helper()
	bin := needMosquitto(tb)
	dir := tb.TempDir()
	return startVersityProc(tb, bin, "mosquitto", baseEnv(dir),
		func(addr string) []string {
			_, wsPort, _ := net.SplitHostPort(addr)
			conf := fmt.Sprintf("per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest stderr\n"+
				"listener %d 127.0.0.1\nlistener %s 127.0.0.1\nprotocol websockets\n", freePort(tb), wsPort)
			file := writeTestFile(tb, filepath.Join(dir, "mosquitto-"+wsPort+".conf"), []byte(conf))
			return []string{"-c", file}
		},
		func(addr string) error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			return c.Close()
		})
}

// iotFront stands in for AWS IoT Core's MQTT-over-WebSocket endpoint: it
// takes an upgrade only with a valid presigned query (recomputed here from
// the SigV4 rules, the token outside the signature, a fresh date), then
// hands the connection to the broker without the signature.
type iotFront struct {
	broker string
	mu     sync.Mutex
	errs   []error
	ok     int
}

func (f *iotFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := checkIoTPresigned(r)
	f.mu.Lock()
	if err != nil {
		f.errs = append(f.errs, err)
	} else {
		f.ok++
	}
	f.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	bc, err := net.Dial("tcp", f.broker)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer bc.Close()
	r.URL.RawQuery = ""
	if err := r.Write(bc); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	cc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer cc.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(bc, brw); done <- struct{}{} }()
	go func() { _, _ = io.Copy(cc, bc); done <- struct{}{} }()
	<-done
}

func (f *iotFront) result() (int, []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ok, slices.Clone(f.errs)
}

// checkIoTPresigned verifies an IoT presigned upgrade with nothing but
// crypto/hmac: the canonical query is every parameter except
// X-Amz-Signature and X-Amz-Security-Token, the only signed header is host,
// the payload hash is that of the empty string.
func checkIoTPresigned(r *http.Request) error {
	if r.URL.Path != "/mqtt" || r.Header.Get("Authorization") != "" || r.Header.Get("X-Amz-Date") != "" {
		return fmt.Errorf("not a presigned /mqtt upgrade: %s %v", r.RequestURI, r.Header)
	}
	raw := r.URL.RawQuery
	q, err := url.ParseQuery(raw)
	if err != nil {
		return err
	}
	tokenParam := "&X-Amz-Security-Token=" + strings.ReplaceAll(url.QueryEscape(iotTestToken), "+", "%20")
	if q.Get("X-Amz-Security-Token") != iotTestToken || !strings.HasSuffix(raw, tokenParam) {
		return fmt.Errorf("X-Amz-Security-Token missing, wrong, or not appended last: %s", raw)
	}
	date := q.Get("X-Amz-Date")
	at, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	if d := time.Since(at); d < -time.Minute || d > 5*time.Minute {
		return fmt.Errorf("X-Amz-Date %s is not fresh", date)
	}
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(scope) != 5 || scope[0] != testAccessKey || scope[1] != date[:8] || scope[2] != testRegion ||
		scope[3] != "iotdevicegateway" || scope[4] != "aws4_request" {
		return fmt.Errorf("X-Amz-Credential %q", q.Get("X-Amz-Credential"))
	}
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" || q.Get("X-Amz-SignedHeaders") != "host" {
		return fmt.Errorf("algorithm %q, signed headers %q", q.Get("X-Amz-Algorithm"), q.Get("X-Amz-SignedHeaders"))
	}
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	var pairs []string
	for k, vv := range q {
		if k == "X-Amz-Signature" || k == "X-Amz-Security-Token" {
			continue
		}
		for _, v := range vv {
			pairs = append(pairs, esc(k)+"="+esc(v))
		}
	}
	sort.Strings(pairs)
	creq := strings.Join([]string{r.Method, r.URL.EscapedPath(), strings.Join(pairs, "&"),
		"host:" + r.Host + "\n", "host", emptySHA256}, "\n")
	h := sha256.Sum256([]byte(creq))
	sts := "AWS4-HMAC-SHA256\n" + date + "\n" + strings.Join(scope[1:], "/") + "\n" + hex.EncodeToString(h[:])
	key := []byte("AWS4" + testSecretKey)
	for _, part := range scope[1:] {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(part))
		key = m.Sum(nil)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sts))
	if want := hex.EncodeToString(m.Sum(nil)); !hmac.Equal([]byte(want), []byte(q.Get("X-Amz-Signature"))) {
		return errors.New("X-Amz-Signature does not verify (was the token signed?)")
	}
	return nil
}

// TestMQTTOverWebSocketIoT: two paho MQTT clients reach a real broker
// (mosquitto) through signet, one through a reverse listener (ws://) and one
// through HTTPS_PROXY (wss://, intercepted), behind a front that admits only
// IoT Core's presigned upgrade. Each receives what both published.
func TestMQTTOverWebSocketIoT(t *testing.T) {
	broker := startMosquitto(t)
	ca := newTestCA(t)
	dir := t.TempDir()
	front := &iotFront{broker: broker}
	fs := httptest.NewUnstartedServer(front)
	fs.TLS = ca.tlsConfig(t, iotDataHost)
	fs.StartTLS()
	t.Cleanup(fs.Close)

	state := filepath.Join(dir, "state")
	caFile := writeTestFile(t, filepath.Join(dir, "upstream-ca.pem"), ca.CertPEM)
	s := startSignet(t, fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %[1]q
log: {level: debug, format: json}
sources:
  device: {method: static, static: {access_key_id: %[2]s, secret_access_key: %[3]q, session_token: %[4]q}}
routes:
  - {hosts: [%[5]s], source: device}
upstream:
  ca_file: %[6]q
  connect_to: {"%[5]s:443": %[7]q}
reverse:
  - {listen: 127.0.0.1:0, upstream: "https://%[5]s", source: device}
`, state, testAccessKey, testSecretKey, iotTestToken, iotDataHost, caFile, strings.TrimPrefix(fs.URL, "https://")), 1)
	proxyURL, _ := url.Parse(s.ProxyURL())

	const topic = "signet/e2e/mqtt"
	got := make(chan string, 16)
	connect := func(name, broker string, proxy mqtt.ProxyFunction, tlsc *tls.Config) mqtt.Client {
		opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID("signet-e2e-" + name).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(30 * time.Second).
			SetWebsocketOptions(&mqtt.WebsocketOptions{Proxy: proxy})
		if tlsc != nil {
			opts.SetTLSConfig(tlsc)
		}
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			ok, errs := front.result()
			t.Fatalf("%s: connect to %s: %v (front admitted %d, refused %v)", name, broker, tok.Error(), ok, errs)
		}
		t.Cleanup(func() { c.Disconnect(250) })
		tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- name + " got " + string(m.Payload()) })
		if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			t.Fatalf("%s: subscribe: %v", name, tok.Error())
		}
		return c
	}
	noProxy := func(*http.Request) (*url.URL, error) { return nil, nil }
	clients := map[string]mqtt.Client{
		"reverse":     connect("reverse", "ws://"+s.Reverse[0]+"/mqtt", noProxy, nil),
		"intercepted": connect("intercepted", "wss://"+iotDataHost+"/mqtt", http.ProxyURL(proxyURL), &tls.Config{RootCAs: signetCAPool(t, state)}),
	}
	for name, c := range clients {
		if tok := c.Publish(topic, 1, false, "hello from "+name); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			t.Fatalf("%s: publish: %v", name, tok.Error())
		}
	}
	var deliveries []string
	watchdog := time.After(2 * time.Minute)
	for len(deliveries) < 4 {
		select {
		case d := <-got:
			deliveries = append(deliveries, d)
		case <-watchdog:
			t.Fatalf("after 2 minutes only %d of 4 deliveries: %q", len(deliveries), deliveries)
		}
	}
	slices.Sort(deliveries)
	want := []string{
		"intercepted got hello from intercepted", "intercepted got hello from reverse",
		"reverse got hello from intercepted", "reverse got hello from reverse",
	}
	if !slices.Equal(deliveries, want) {
		t.Fatalf("deliveries %q, want %q", deliveries, want)
	}
	if ok, errs := front.result(); ok != 2 || len(errs) != 0 {
		t.Fatalf("front admitted %d upgrades (want 2), refused %v", ok, errs)
	}
}
