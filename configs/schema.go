package configs

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// SchemaDialect is the JSON Schema draft that Schema writes.
const SchemaDialect = "https://json-schema.org/draft/2020-12/schema"

// Schema returns a JSON Schema (draft 2020-12) of a signet config file, for
// editors to validate and complete. It is derived from Config's koanf tags,
// so every key Load reads is in it and no other: unknown keys are refused,
// as Load refuses them. Defaults come from the embedded default config.
//
// The schema checks the shape of one file. What depends on the merged
// layers (a route naming a declared source, a method's block being
// present) is left to Load, so a file that sets only what it changes
// passes.
func Schema() ([]byte, error) {
	var def map[string]any
	if err := yaml.Unmarshal(defaultYAML, &def); err != nil {
		return nil, fmt.Errorf("configs: schema: parse embedded default: %w", err)
	}
	b := schemaBuilder{fields: fieldSpecs()}
	root := b.of(reflect.TypeFor[Config](), def)
	root["$schema"] = SchemaDialect
	root["title"] = "signet configuration"
	root["description"] = "A signet config file (YAML, TOML or JSON). It is merged over the embedded default; " +
		"SIGNET_* environment variables and flags are merged over it."
	out, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("configs: schema: %w", err)
	}
	return append(out, '\n'), nil
}

// fieldKey names a struct field by its type and koanf tag, so a spec
// follows the field wherever the type is used.
type fieldKey struct {
	t   reflect.Type
	tag string
}

// fieldSpec is what reflection cannot tell about a field.
type fieldSpec struct {
	desc string
	// enum lists the accepted strings; the same constants validate uses.
	enum []string
	// pattern is a regexp the whole value must match (Go and ECMA 262
	// agree on every one used here).
	pattern string
	// min and max bound an integer.
	min, max *int
	// required keys of a list item; a list in a file replaces the whole
	// list, so its items carry every required key themselves.
	itemRequired []string
	// forbidden fields exist only so that Load can say why they are
	// refused (a PIN in the config).
	forbidden bool
	// keyPattern constrains the keys of a map.
	keyPattern string
}

func ptr(i int) *int { return &i }

// optional turns a validation regexp into a pattern that also accepts "",
// for keys where empty means "not set".
func optional(pattern string) string { return "^$|" + pattern }

// fieldSpecs holds the descriptions, enums and patterns of config keys.
// A key missing here still appears in the schema, without a description;
// TestSchemaDescribesEveryKey lists such keys.
func fieldSpecs() map[fieldKey]fieldSpec {
	k := func(v any, tag string) fieldKey { return fieldKey{reflect.TypeOf(v), tag} }
	payload := []string{PayloadAuto, PayloadUnsigned, PayloadSigned}
	const payloadDesc = "How the body enters the signature: auto (UNSIGNED-PAYLOAD for S3 over https, else hashed), unsigned (UNSIGNED-PAYLOAD), signed (always hashed)."
	region := optional(regionRE.String())
	service := optional(serviceRE.String())
	return map[fieldKey]fieldSpec{
		k(Config{}, "listen"):           {desc: "Forward-proxy address, host:port; port 0 picks a free port. Any address but loopback needs proxy_auth.file."},
		k(Config{}, "state_dir"):        {desc: "Directory of the local CA (mode 0700) and the body spool. Empty: $XDG_STATE_HOME/signet, else $HOME/.local/state/signet."},
		k(Config{}, "shutdown_timeout"): {desc: "How long in-flight requests may drain after SIGINT or SIGTERM."},
		k(Config{}, "log"):              {desc: "Logging (log/slog)."},
		k(Config{}, "sources"):          {desc: "Named credential sources; routes and reverse listeners name them. Merged key by key with the default source `default` (the AWS SDK chain).", keyPattern: sourceNameRE.String()},
		k(Config{}, "routes"):           {desc: "Which requests are signed and how; the first route whose hosts and path_prefix match wins. A list here replaces the default routes.", itemRequired: []string{"hosts", "source"}},
		k(Config{}, "unmatched"):        {desc: "A request no route matches: forward it unsigned (CONNECT: a blind tunnel), or deny it with 403.", enum: []string{UnmatchedForward, UnmatchedDeny}},
		k(Config{}, "upstream"):         {desc: "How signet dials upstreams."},
		k(Config{}, "reverse"):          {desc: "Reverse listeners: every request to one is signed and sent to one upstream.", itemRequired: []string{"listen", "upstream", "source"}},
		k(Config{}, "intercept"):        {desc: "TLS interception of CONNECT requests to hosts a route signs (HTTPS_PROXY clients)."},
		k(Config{}, "proxy_tls"):        {desc: "TLS on the proxy listener itself, for clients with an https:// proxy URL."},
		k(Config{}, "proxy_auth"):       {desc: "Proxy-Authorization: Basic for forward-proxy clients."},

		k(Config{}, "admin"):  {desc: "The admin listener: /healthz, /readyz, /metrics, the state of the sources, and credential endpoints for SDK apps beside signet."},
		k(Config{}, "cache"):  {desc: "Bounded caches of per-upstream state (transports, signing scopes)."},
		k(Config{}, "limits"): {desc: "What clients can make signet hold; over a limit the client gets a 4xx or 5xx answer and signet serves on."},

		k(Limits{}, "max_header_bytes"):                 {desc: "Request line and headers of one request, 4KiB to 16MiB (default 64KiB); over: 431."},
		k(Limits{}, "max_body_bytes"):                   {desc: "Body of one request a route or reverse listener signs, unless it sets its own (default 5GiB); over: 413 request-body-too-large. Unsigned requests are not limited."},
		k(Limits{}, "max_spool_bytes"):                  {desc: "Request bodies spooled to disk for hashing, all requests together (default 4GiB); over: 507 spool-full."},
		k(Limits{}, "max_connections"):                  {desc: "Open client connections of the proxy and reverse listeners together, tunnels included (default 10000); over: 503 too-many-connections.", min: ptr(minMaxConnections), max: ptr(maxMaxConnections)},
		k(Limits{}, "read_header_timeout"):              {desc: "How long a client may take to send a request's headers, at most 10m (default 10s)."},
		k(Limits{}, "idle_timeout"):                     {desc: "How long an idle keep-alive client connection stays open, at most 24h (default 2m)."},
		k(Limits{}, "upstream_response_header_timeout"): {desc: "How long signet waits for an upstream's response headers, at most 24h (default 16m: a synchronous Lambda invoke may run 15m); over: 504."},

		k(Admin{}, "listen"):      {desc: "Admin address, host:port (port 0 picks a free one), or off. Anything but loopback needs auth.file."},
		k(Admin{}, "auth"):        {desc: "Basic authentication on the admin listener, for all but /healthz and the credential endpoints (which take the token)."},
		k(Admin{}, "token_file"):  {desc: "File with the token /v1/credentials/NAME requires (AWS_CONTAINER_AUTHORIZATION_TOKEN); empty: one generated per run into <state_dir>/admin-token."},
		k(Admin{}, "imds"):        {desc: "Also serve an IMDSv2-compatible instance metadata endpoint (/latest/...); needs a loopback admin.listen."},
		k(Admin{}, "imds_source"): {desc: "Source served as the instance's role; empty: the first route's, else default.", pattern: optional(sourceNameRE.String())},
		k(AdminAuth{}, "file"):    {desc: "File of user:password lines (plain or bcrypt), as proxy_auth.file. Required when admin.listen is not loopback."},
		k(Cache{}, "policy"):      {desc: "Eviction: lru (least recently used) or lfu (least frequently used); leaf certificates use it too.", enum: []string{CacheLRU, CacheLFU}},
		k(Cache{}, "max_size"):    {desc: "Entries each cache holds.", min: ptr(minCacheSize), max: ptr(maxCacheSize)},

		k(Log{}, "level"):  {desc: "Least severe level logged.", enum: []string{LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError}},
		k(Log{}, "format"): {desc: "Log line format.", enum: []string{LogFormatText, LogFormatJSON}},
		k(Log{}, "access"): {desc: "One line per request at info level: method, host, path without query values, status, signing name, region, source, duration, bytes; never a credential or signature."},

		k(Source{}, "method"):  {desc: "Where the credentials come from; exactly the block of that name may be set.", enum: []string{MethodStatic, MethodChain, MethodSTS, MethodIoT, MethodWasm}},
		k(Source{}, "static"):  {desc: "Long-lived or pre-fetched keys (method static)."},
		k(Source{}, "chain"):   {desc: "The AWS SDK default credential chain (method chain): environment, shared files, SSO, web identity, container and instance metadata."},
		k(Source{}, "sts"):     {desc: "STS AssumeRole, with MFA if needed, refreshed before expiry (method sts)."},
		k(Source{}, "iot"):     {desc: "The AWS IoT Core credentials provider over mutual TLS, key in a PEM file or a PKCS#11 token (method iot)."},
		k(Source{}, "wasm"):    {desc: "A WebAssembly module that prints credentials in the credential_process format, run sandboxed (method wasm)."},
		k(Source{}, "refresh"): {desc: "When the source's credentials are refreshed."},

		k(Refresh{}, "mode"):      {desc: "deferred: refresh when a request needs keys; eager: refresh on a timer so that no request waits.", enum: []string{RefreshDeferred, RefreshEager}},
		k(Refresh{}, "advisory"):  {desc: "How long before expiry a refresh is first tried while the current keys are still served (at most 12h)."},
		k(Refresh{}, "mandatory"): {desc: "How long before expiry requests wait for a refresh instead; at most advisory."},
		k(Refresh{}, "timeout"):   {desc: "Bound on one fetch, and so on a request's wait for it (at most 10m)."},

		k(Static{}, "access_key_id"):     {desc: "Access key ID. Better set through SIGNET_SOURCES__<NAME>__STATIC__ACCESS_KEY_ID."},
		k(Static{}, "secret_access_key"): {desc: "Secret access key. Better set through SIGNET_SOURCES__<NAME>__STATIC__SECRET_ACCESS_KEY."},
		k(Static{}, "session_token"):     {desc: "Session token of temporary keys."},

		k(Chain{}, "profile"): {desc: "Profile of ~/.aws/config (AWS_CONFIG_FILE honoured); empty: AWS_PROFILE or default."},

		k(Route{}, "hosts"):                {desc: "Host globs (path.Match, '*' also crosses dots) on the host name without port, like *.amazonaws.com."},
		k(Route{}, "path_prefix"):          {desc: "Limits the route to request paths under this prefix, like /bucket/."},
		k(Route{}, "source"):               {desc: "Name of the source whose keys sign.", pattern: sourceNameRE.String()},
		k(Route{}, "service"):              {desc: "Signing name, overriding the endpoint table, like s3 or execute-api.", pattern: service},
		k(Route{}, "region"):               {desc: "Signing region, overriding the endpoint table, like eu-west-1.", pattern: region},
		k(Route{}, "signing_host"):         {desc: "Host sent and signed instead of the request's."},
		k(Route{}, "payload"):              {desc: payloadDesc, enum: payload},
		k(Route{}, "upstream_scheme"):      {desc: "Scheme to the upstream, whatever the client used.", enum: []string{SchemeHTTPS, SchemeHTTP}},
		k(Route{}, "insecure_skip_verify"): {desc: "Do not verify the upstream's certificate on this route (test endpoints only; logged at start)."},
		k(Route{}, "max_body_bytes"):       {desc: "Body of one request this route signs; default limits.max_body_bytes."},

		k(Upstream{}, "connect_to"): {desc: "Dial another address, keeping Host and SNI, like curl --connect-to: \"host[:port]\" or a glob to \"host:port\"."},
		k(Upstream{}, "ca_file"):    {desc: "PEM bundle of extra roots for upstream TLS, added to the system's."},

		k(Reverse{}, "listen"):         {desc: "Listener address, host:port; loopback unless allow_remote."},
		k(Reverse{}, "upstream"):       {desc: "Base URL every request goes to, like https://s3.eu-west-1.amazonaws.com."},
		k(Reverse{}, "source"):         {desc: "Name of the source whose keys sign.", pattern: sourceNameRE.String()},
		k(Reverse{}, "service"):        {desc: "Signing name, overriding the endpoint table.", pattern: service},
		k(Reverse{}, "region"):         {desc: "Signing region, overriding the endpoint table.", pattern: region},
		k(Reverse{}, "payload"):        {desc: payloadDesc, enum: payload},
		k(Reverse{}, "allow_remote"):   {desc: "Accept a listen address that is not loopback: anyone who reaches it gets requests signed."},
		k(Reverse{}, "max_body_bytes"): {desc: "Body of one request to this listener; default limits.max_body_bytes."},

		k(Intercept{}, "cache_size"): {desc: "Leaf certificates kept in memory.", min: ptr(minCacheSize), max: ptr(maxCacheSize)},

		k(ProxyTLS{}, "mode"):      {desc: "off: plain HTTP; local: a certificate from signet's CA; acme: a certificate from an ACME CA.", enum: []string{ProxyTLSOff, ProxyTLSLocal, ProxyTLSACME}},
		k(ProxyTLS{}, "names"):     {desc: "DNS names and IP addresses of the listener certificate (local: default localhost and the listen host; acme: required)."},
		k(ProxyTLS{}, "acme"):      {desc: "ACME settings; only with mode acme."},
		k(ACME{}, "ca"):            {desc: "ACME directory URL (https, or http to a loopback host)."},
		k(ACME{}, "email"):         {desc: "Contact address given to the CA."},
		k(ACME{}, "trusted_roots"): {desc: "PEM file of roots for the ACME server's own TLS (test CAs such as Pebble)."},

		k(ProxyAuth{}, "file"): {desc: "File of user:password lines (plain or bcrypt), not readable by others. Required when listen is not loopback."},

		k(STS{}, "role_arn"):            {desc: "Role to assume, like arn:aws:iam::123456789012:role/Admin (or from profile).", pattern: optional(roleARNRE.String())},
		k(STS{}, "role_session_name"):   {desc: "Session name, 2 to 64 of letters, digits and +=,.@_- (default signet)."},
		k(STS{}, "duration"):            {desc: "Session lifetime, 15m to 12h (1h at most when chained from another sts source); 0: the profile's or STS's default."},
		k(STS{}, "external_id"):         {desc: "External ID the role's trust policy asks for."},
		k(STS{}, "policy"):              {desc: "Inline session policy, a JSON document of at most 2048 characters."},
		k(STS{}, "policy_arns"):         {desc: "Managed session policies, at most 10 ARNs."},
		k(STS{}, "tags"):                {desc: "Session tags, at most 50."},
		k(STS{}, "transitive_tag_keys"): {desc: "Keys of tags that pass on to chained sessions."},
		k(STS{}, "source_identity"):     {desc: "Source identity recorded in CloudTrail."},
		k(STS{}, "serial_number"):       {desc: "MFA device ARN or hardware serial; needs mfa (or token_code)."},
		k(STS{}, "token_code"):          {desc: "A fixed 6-digit MFA code: only good for one call; prefer mfa.command.", pattern: optional(tokenCodeRE.String())},
		k(STS{}, "mfa"):                 {desc: "The command that prints an MFA code, run without a shell on every refresh."},
		k(STS{}, "region"):              {desc: "STS region, for the regional endpoint.", pattern: region},
		k(STS{}, "endpoint"):            {desc: "STS endpoint URL, https (http only to a loopback host), no path."},
		k(STS{}, "source"):              {desc: "Another signet source whose keys call STS (role chaining); default: the AWS SDK chain.", pattern: optional(sourceNameRE.String())},
		k(STS{}, "profile"):             {desc: "Profile of ~/.aws/config whose role_arn, source_profile, mfa_serial and so on are used; keys set here win."},

		k(MFA{}, "command"): {desc: "Program and arguments, a list or a string of words quoted as in a shell (never run by one)."},
		k(MFA{}, "timeout"): {desc: "How long the command may run, at most 5m (default 30s)."},
		k(MFA{}, "env"):     {desc: "Names of the only environment variables the command sees, taken from signet's environment."},

		k(IoT{}, "endpoint"):                    {desc: "Credentials provider endpoint (aws iot describe-endpoint --endpoint-type iot:CredentialProvider): host, host:port or https://host[:port]."},
		k(IoT{}, "role_alias"):                  {desc: "IoT role alias whose role is assumed."},
		k(IoT{}, "thing_name"):                  {desc: "Thing name sent as x-amzn-iot-thingname; the certificate must be attached to it."},
		k(IoT{}, "certificate"):                 {desc: "PEM file of the device certificate, then any intermediates."},
		k(IoT{}, "private_key"):                 {desc: "PEM file of the certificate's key (PKCS#1, SEC1 or PKCS#8); or pkcs11 instead."},
		k(IoT{}, "private_key_passphrase_file"): {desc: "File holding the passphrase of an encrypted PKCS#8 private_key."},
		k(IoT{}, "pkcs11"):                      {desc: "The device key in a PKCS#11 token instead of private_key (a cgo build)."},
		k(IoT{}, "ca_file"):                     {desc: "PEM roots for the endpoint's certificate, instead of the system's."},
		k(IoT{}, "timeout"):                     {desc: "One call to the endpoint, TLS handshake included (default 10s)."},

		k(PKCS11{}, "module"):       {desc: "Path of the PKCS#11 library, like /usr/lib/softhsm/libsofthsm2.so."},
		k(PKCS11{}, "token_label"):  {desc: "Token by label; exactly one of token_label, token_serial, slot (or uri)."},
		k(PKCS11{}, "token_serial"): {desc: "Token by serial number."},
		k(PKCS11{}, "slot"):         {desc: "Token by slot ID.", min: ptr(0)},
		k(PKCS11{}, "key_label"):    {desc: "Key by label (CKA_LABEL); or key_id."},
		k(PKCS11{}, "key_id"):       {desc: "Key by CKA_ID, as hex digits.", pattern: optional(hexRE.String())},
		k(PKCS11{}, "pin_file"):     {desc: "File holding the user PIN; or pin_env."},
		k(PKCS11{}, "pin_env"):      {desc: "Environment variable holding the user PIN.", pattern: optional(envNameRE.String())},
		k(PKCS11{}, "uri"):          {desc: "RFC 7512 URI naming token and key, instead of the token and key fields, like pkcs11:token=dev;object=device."},
		k(PKCS11{}, "pin"):          {desc: "Not allowed: a PIN is never written in the config; use pin_file or pin_env.", forbidden: true},

		k(Wasm{}, "module"):           {desc: "The .wasm file, a WASI preview1 command."},
		k(Wasm{}, "sha256"):           {desc: "Pin: hex SHA-256 of the module (sha256sum); a module that differs is refused.", pattern: optional(sha256RE.String())},
		k(Wasm{}, "args"):             {desc: "Arguments after argv[0]; shown by signet check, so no secrets."},
		k(Wasm{}, "env"):              {desc: "The module's whole environment; values are treated as secrets."},
		k(Wasm{}, "stdin"):            {desc: "What the module reads on standard input (at most 64 KiB); treated as a secret."},
		k(Wasm{}, "allow_hosts"):      {desc: "Where the module may send HTTP requests: host, host:port or *.suffix. Empty: no network."},
		k(Wasm{}, "allow_http"):       {desc: "Allow plain http as well as https."},
		k(Wasm{}, "allow_private"):    {desc: "Let the allowed hosts resolve to loopback, private, link-local and metadata addresses."},
		k(Wasm{}, "dir"):              {desc: "Host directory the module may read (never write)."},
		k(Wasm{}, "dir_mount"):        {desc: "Guest path of dir (default /config)."},
		k(Wasm{}, "timeout"):          {desc: "Bound on one run, at most 5m and at most refresh.timeout (default 10s)."},
		k(Wasm{}, "memory_limit"):     {desc: "Cap on the module's memory, 1MiB to 4GiB (default 64MiB)."},
		k(Wasm{}, "refresh_interval"): {desc: "How long credentials without an Expiration are kept, 1m to 12h (default 1h)."},
	}
}

// durationPattern is what time.ParseDuration reads, without a sign: a
// negative duration is never valid in a config.
const durationPattern = `^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// byteSizePattern is what ParseByteSize reads when it is a string.
const byteSizePattern = `^\s*[0-9]+\s*([bB]|[kKmMgG][iI][bB]|[kKmMgG][bB])?\s*$`

type schemaBuilder struct {
	fields map[fieldKey]fieldSpec
}

// of returns the schema of a value of type t; def is the embedded default
// at that place, if any.
func (b schemaBuilder) of(t reflect.Type, def any) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case reflect.TypeFor[time.Duration](), reflect.TypeFor[Duration]():
		return map[string]any{"type": "string", "pattern": durationPattern,
			"description": "A Go duration like 30s, 15m or 1h30m."}
	case reflect.TypeFor[ByteSize]():
		return map[string]any{"anyOf": []any{
			map[string]any{"type": "integer", "minimum": 0},
			map[string]any{"type": "string", "pattern": byteSizePattern},
		}, "description": "Bytes, or a whole number with a unit: B, KiB, MiB, GiB, kB, MB, GB, like 64MiB."}
	case reflect.TypeFor[Command]():
		return map[string]any{"anyOf": []any{
			map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "minItems": 1},
			map[string]any{"type": "string", "minLength": 1},
		}}
	}
	switch t.Kind() {
	case reflect.Struct:
		return b.object(t, def)
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": b.of(t.Elem(), nil)}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": b.of(t.Elem(), nil)}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return map[string]any{"type": "integer"}
	}
	// A kind no config field has today: accept anything rather than
	// refuse a valid file; TestSchemaKnowsEveryType catches it.
	return map[string]any{}
}

func (b schemaBuilder) object(t reflect.Type, def any) map[string]any {
	defs, _ := def.(map[string]any)
	props := map[string]any{}
	for f := range t.Fields() {
		tag := tagOf(f)
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		spec := b.fields[fieldKey{t, tag}]
		if spec.forbidden {
			props[tag] = map[string]any{"not": map[string]any{}, "description": spec.desc}
			continue
		}
		s := b.of(f.Type, defs[tag])
		b.apply(s, spec)
		if d, ok := scalarDefault(defs[tag]); ok {
			s["default"] = d
		}
		props[tag] = s
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if t == reflect.TypeFor[Source]() {
		s["allOf"] = methodBlocks(t, b.fields[fieldKey{t, "method"}].enum)
	}
	return s
}

func (b schemaBuilder) apply(s map[string]any, spec fieldSpec) {
	if spec.desc != "" {
		s["description"] = spec.desc
	}
	if spec.enum != nil {
		s["enum"] = spec.enum
	}
	if spec.pattern != "" {
		s["pattern"] = spec.pattern
	}
	if spec.min != nil {
		s["minimum"] = *spec.min
	}
	if spec.max != nil {
		s["maximum"] = *spec.max
	}
	if spec.itemRequired != nil {
		if items, ok := s["items"].(map[string]any); ok {
			items["required"] = spec.itemRequired
		}
	}
	if spec.keyPattern != "" {
		s["propertyNames"] = map[string]any{"pattern": spec.keyPattern}
	}
}

// methodBlocks says that a source whose method the file sets has no
// other method's block: the merged source would have both, which Load
// refuses whatever the other layers say.
func methodBlocks(t reflect.Type, methods []string) []any {
	var blocks []string
	for f := range t.Fields() {
		if slices.Contains(methods, tagOf(f)) {
			blocks = append(blocks, tagOf(f))
		}
	}
	var out []any
	for _, m := range methods {
		others := map[string]any{}
		for _, b := range blocks {
			if b != m {
				others[b] = false
			}
		}
		out = append(out, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"method": map[string]any{"const": m}}, "required": []string{"method"}},
			"then": map[string]any{"properties": others},
		})
	}
	return out
}

// scalarDefault is a default worth showing in an editor: a non-empty
// scalar. Lists and maps of the default are merged or replaced by rules
// a "default" keyword cannot say.
func scalarDefault(v any) (any, bool) {
	switch v := v.(type) {
	case string:
		return v, v != ""
	case bool, int, int64, uint64, float64:
		return v, true
	}
	return nil, false
}
