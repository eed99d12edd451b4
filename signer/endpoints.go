package signer

import "strings"

// domain is one DNS suffix under which AWS publishes SigV4 endpoints. A rule
// lists the domains it applies to as a bit set, so the same pattern serves
// several partitions without being written twice.
type domain uint8

const (
	// amazonaws.com: the aws and aws-us-gov partitions.
	domAmazonaws domain = 1 << iota
	// amazonaws.com.cn: the aws-cn partition.
	domAmazonawsCN
	// api.aws: dual-stack endpoints of aws and aws-us-gov.
	domAPIAWS
	// api.amazonwebservices.com.cn: dual-stack endpoints of aws-cn.
	domAPICN
	// on.aws: Lambda function URLs.
	domOnAWS
)

// domainSuffixes gives each domain its suffix and whether its regions are the
// China ones. A region label is only accepted under a suffix of its own
// partition, so "s3.cn-north-1.amazonaws.com" is not a China endpoint.
var domainSuffixes = [...]struct {
	dom    domain
	suffix string
	china  bool
}{
	{domAmazonaws, "amazonaws.com", false},
	{domAmazonawsCN, "amazonaws.com.cn", true},
	{domAPIAWS, "api.aws", false},
	{domAPICN, "api.amazonwebservices.com.cn", true},
	{domOnAWS, "on.aws", false},
}

const (
	domAWS  = domAmazonaws | domAmazonawsCN // regional, every partition
	domDual = domAPIAWS | domAPICN          // new-style dual-stack
)

// endpointRule maps one shape of host name to a signing scope.
//
// pattern is written in labels, left to right, for the part of the host left
// of the domain suffix, and is matched from the right:
//
//	literal      the label itself
//	name[-fips]  the label, or the label with "-fips" appended (FIPS variant)
//	*            exactly one label, any value (an API id, a domain name)
//	pre*         one label that starts with pre and is longer than it
//	{region}     a region label valid for the domain's partition;
//	             pre{region} is a label made of pre followed by a region
//	{svc}        one label, the endpoint prefix
//	{prefix}     leftmost only: one or more labels, the endpoint prefix
//	**           leftmost only: zero or more labels (bucket names with dots,
//	             access point and account prefixes)
//
// The endpoint prefix of {svc}/{prefix} loses a trailing "-fips" and then goes
// through signingNames; a prefix of several labels that signingNames does not
// list is not matched, so an unknown shape is never guessed at.
type endpointRule struct {
	domains domain
	pattern string
	// service is the signing name; empty means it comes from {svc}/{prefix}.
	service string
	// region is a fixed signing region for global endpoints; empty means it
	// comes from {region}.
	region string
	// refuse, when set, says why a host that does match is still not given a
	// scope: Lookup answers ok=false, so the route must say what to do.
	refuse string
}

// endpointRules is the one table Lookup uses. The first rule that matches
// decides, and the order is, most specific first:
//
//  1. refusals: known AWS hosts that are not plain SigV4 endpoints;
//  2. global endpoints, exact names with a fixed region;
//  3. endpoints whose leftmost labels are an id and whose service label is
//     not the endpoint prefix (execute-api, OpenSearch, IoT data, ...);
//  4. the S3 family, where bucket, access point or account labels may precede;
//  5. the generic regional forms, {prefix}.{region} and its FIPS and
//     dual-stack variants, with signingNames for prefixes whose signing name
//     differs.
//
// Signing names and global regions come from the AWS endpoint metadata
// (endpoints.json credentialScope and the service models' signingName);
// shapes that this metadata does not describe are left out on purpose.
var endpointRules = [...]endpointRule{
	// 1. Refusals.
	{domains: domAWS, pattern: "**.s3-website-{region}", refuse: "S3 website endpoints serve anonymous requests only"},
	{domains: domAWS, pattern: "**.s3-website.{region}", refuse: "S3 website endpoints serve anonymous requests only"},
	{domains: domAmazonaws, pattern: "**.s3-accelerate", refuse: "S3 Transfer Acceleration signs with the bucket's region, which the host does not name"},
	{domains: domAmazonaws, pattern: "**.s3-accelerate.dualstack", refuse: "S3 Transfer Acceleration signs with the bucket's region, which the host does not name"},
	{domains: domAmazonaws, pattern: "**.accesspoint.s3-global", refuse: "S3 Multi-Region Access Points need SigV4A"},
	{domains: domAWS, pattern: "*.credentials.iot.{region}", refuse: "the IoT credential provider authenticates with mutual TLS, not SigV4"},

	// 2. Global endpoints.
	{domains: domAmazonaws, pattern: "iam[-fips]", service: "iam", region: "us-east-1"},
	{domains: domAPIAWS, pattern: "iam.global", service: "iam", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "sts", service: "sts", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "route53[-fips]", service: "route53", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "cloudfront", service: "cloudfront", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "waf", service: "waf", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "budgets", service: "budgets", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "savingsplans", service: "savingsplans", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "sdb", service: "sdb", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "global.health", service: "health", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "queue", service: "sqs", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "**.s3-external-1", service: "s3", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "**.s3", service: "s3", region: "us-east-1"},
	{domains: domAmazonaws, pattern: "iam.us-gov", service: "iam", region: "us-gov-west-1"},
	{domains: domAmazonaws, pattern: "route53.us-gov", service: "route53", region: "us-gov-west-1"},
	{domains: domAmazonaws, pattern: "global.health.us-gov", service: "health", region: "us-gov-west-1"},
	{domains: domAmazonawsCN, pattern: "route53", service: "route53", region: "cn-northwest-1"},
	{domains: domAmazonawsCN, pattern: "budgets", service: "budgets", region: "cn-northwest-1"},
	{domains: domAmazonawsCN, pattern: "global.health", service: "health", region: "cn-northwest-1"},

	// 3. Id-prefixed and region-first endpoints.
	{domains: domAWS, pattern: "*.execute-api.{region}", service: "execute-api"},
	{domains: domAWS, pattern: "*.appsync-api.{region}", service: "appsync"},
	{domains: domAWS, pattern: "*.appsync-realtime-api.{region}", service: "appsync"},
	{domains: domOnAWS, pattern: "*.lambda-url.{region}", service: "lambda"},
	{domains: domAWS, pattern: "*.{region}.es", service: "es"},
	{domains: domAWS, pattern: "*.{region}.aoss", service: "aoss"},
	{domains: domAWS, pattern: "*.{region}.cloudsearch", service: "cloudsearch"},
	{domains: domAWS, pattern: "*.*.{region}.neptune", service: "neptune-db"},
	{domains: domAmazonaws, pattern: "{region}.queue", service: "sqs"},
	{domains: domAWS, pattern: "*.data.mediastore.{region}", service: "mediastore"},
	{domains: domAWS, pattern: "*.neptune-graph.{region}", service: "neptune-graph"},
	{domains: domAWS, pattern: "greengrass-ats.iot.{region}", service: "greengrass"},
	{domains: domAWS, pattern: "*.ats.iot.{region}", service: "iotdata"},
	// data.iot, data-ats.iot and account-specific PREFIX-ats.iot (and the
	// older PREFIX.iot) are all the IoT data plane.
	{domains: domAWS, pattern: "*.iot[-fips].{region}", service: "iotdata"},

	// 4. S3 family.
	{domains: domAWS, pattern: "**.s3[-fips].{region}", service: "s3"},
	{domains: domAWS, pattern: "**.s3[-fips].dualstack.{region}", service: "s3"},
	{domains: domAmazonaws, pattern: "**.s3-{region}", service: "s3"},
	{domains: domAWS, pattern: "**.s3-accesspoint[-fips].{region}", service: "s3"},
	{domains: domAWS, pattern: "**.s3-accesspoint[-fips].dualstack.{region}", service: "s3"},
	{domains: domAWS, pattern: "**.s3-control[-fips].{region}", service: "s3"},
	{domains: domAWS, pattern: "**.s3-control[-fips].dualstack.{region}", service: "s3"},
	{domains: domAWS, pattern: "**.s3-object-lambda[-fips].{region}", service: "s3-object-lambda"},
	{domains: domAWS, pattern: "**.s3-outposts.{region}", service: "s3-outposts"},
	{domains: domAWS, pattern: "s3express-control[-fips].{region}", service: "s3express"},
	{domains: domAWS, pattern: "s3express-control[-fips].dualstack.{region}", service: "s3express"},
	// Zonal S3 Express: BUCKET.s3express[-fips]-AZID.REGION.
	{domains: domAWS, pattern: "**.s3express-*.{region}", service: "s3express"},
	{domains: domAWS, pattern: "**.s3express-*.dualstack.{region}", service: "s3express"},

	// 5. Generic regional forms.
	{domains: domAWS, pattern: "{prefix}.{region}"},
	{domains: domAWS, pattern: "{prefix}.dualstack.{region}"},
	{domains: domAWS, pattern: "fips.{svc}.{region}"},
	{domains: domDual, pattern: "{prefix}.{region}"},
}

// signingNames lists the endpoint prefixes whose SigV4 signing name is not
// the prefix itself (service model signingName, endpoints.json
// credentialScope, and operation host prefixes such as "sync-" for Step
// Functions). A prefix not listed here signs as itself when it is one label,
// and is unknown when it is several.
var signingNames = map[string]string{
	"a2i-runtime.sagemaker":             "sagemaker",
	"admin.wickr":                       "wickr",
	"agreement-marketplace":             "aws-marketplace",
	"aos":                               "es", // OpenSearch control plane on api.aws
	"api-fulfill.dataexchange":          "dataexchange",
	"api.airflow":                       "airflow",
	"api.detective":                     "detective",
	"api.ecr":                           "ecr",
	"api.ecr-public":                    "ecr-public",
	"api.iotdeviceadvisor":              "iotdeviceadvisor",
	"api.iotmanagedintegrations":        "iotmanagedintegrations",
	"api.iotsitewise":                   "iotsitewise",
	"api.iottwinmaker":                  "iottwinmaker",
	"api.iotwireless":                   "iotwireless",
	"api.mediatailor":                   "mediatailor",
	"api.pricing":                       "pricing",
	"api.sagemaker":                     "sagemaker",
	"api.thinclient":                    "thinclient",
	"api.tunneling.iot":                 "IoTSecuredTunneling",
	"appconfigdata":                     "appconfig",
	"appstream2":                        "appstream",
	"bedrock-agent":                     "bedrock",
	"bedrock-agent-runtime":             "bedrock",
	"bedrock-agentcore-control":         "bedrock-agentcore",
	"bedrock-data-automation":           "bedrock",
	"bedrock-data-automation-runtime":   "bedrock",
	"bedrock-runtime":                   "bedrock",
	"cassandra-streams":                 "cassandra",
	"catalog.marketplace":               "aws-marketplace",
	"cloudhsmv2":                        "cloudhsm",
	"cn.transcribe":                     "transcribe",
	"contact-lens":                      "connect",
	"controlplane.payment-cryptography": "payment-cryptography",
	"data-ats.iot":                      "iotdata",
	"data-lakeformation":                "lakeformation",
	"data-servicediscovery":             "servicediscovery",
	"data-signer":                       "signer",
	"data.iot":                          "iotdata",
	"data.iotevents":                    "ioteventsdata",
	"data.iotsitewise":                  "iotsitewise",
	"data.iottwinmaker":                 "iottwinmaker",
	"data.jobs.iot":                     "iot-jobs-data",
	"data.qapps":                        "qapps",
	"dataplane.payment-cryptography":    "payment-cryptography",
	"dataplane.rum":                     "rum",
	"deployment-marketplace":            "aws-marketplace",
	"discovery-marketplace":             "aws-marketplace",
	"edge.sagemaker":                    "sagemaker",
	"email":                             "ses",
	"entitlement-marketplace":           "aws-marketplace",
	"entitlement.marketplace":           "aws-marketplace",
	"env.airflow":                       "airflow",
	"featurestore-runtime.sagemaker":    "sagemaker",
	"forecastquery":                     "forecast",
	"identity-chime":                    "chime",
	"ingest.timestream":                 "timestream",
	"ivsrealtime":                       "ivs",
	"mail-manager":                      "ses",
	"management.deadline":               "deadline",
	"maps.geo":                          "geo",
	"media-pipelines-chime":             "chime",
	"meetings-chime":                    "chime",
	"memory-db":                         "memorydb",
	"messaging-chime":                   "chime",
	"metering-marketplace":              "aws-marketplace",
	"metering.marketplace":              "aws-marketplace",
	"metrics.sagemaker":                 "sagemaker",
	"migrationhub-config":               "mgh",
	"models-v2-lex":                     "lex",
	"models.lex":                        "lex",
	"monitor.iotsitewise":               "iotsitewise",
	"mturk-requester-sandbox":           "mturk-requester",
	"oidc":                              "sso-oauth",
	"ops.airflow":                       "airflow",
	"participant.connect":               "execute-api",
	"personalize-events":                "personalize",
	"personalize-runtime":               "personalize",
	"pinpoint":                          "mobiletargeting",
	"places.geo":                        "geo",
	"portal.sso":                        "awsssoportal",
	"query-lakeformation":               "lakeformation",
	"query.timestream":                  "timestream",
	"routes.geo":                        "geo",
	"runtime-medical-imaging":           "medical-imaging",
	"runtime-v2-lex":                    "lex",
	"runtime.lex":                       "lex",
	"runtime.sagemaker":                 "sagemaker",
	"s3-accesspoint":                    "s3",
	"s3-control":                        "s3",
	"scheduling.deadline":               "deadline",
	"servicecatalog-appregistry":        "servicecatalog",
	"sms-voice.pinpoint":                "sms-voice",
	"stream-logs":                       "logs",
	"streams.dynamodb":                  "dynamodb",
	"sync-states":                       "states",
	"verification.signer":               "signer",
	"voice-chime":                       "chime",
}

// maxHostLen is the DNS limit on a name; longer input is not a host.
const maxHostLen = 253

// Lookup maps a host (any case, optional ":port", optional trailing dot) to
// its signing scope from one tested table. ok=false when the table does not
// know the host. Never guesses between candidates: the first rule of
// endpointRules that matches decides.
func Lookup(host string) (Scope, bool) {
	h, ok := normalizeHost(host)
	if !ok {
		return Scope{}, false
	}
	// The suffixes do not overlap, so a host is under at most one domain:
	// find it once rather than per rule.
	for _, d := range domainSuffixes {
		rest, found := cutDomain(h, d.suffix)
		if !found {
			continue
		}
		for i := range endpointRules {
			r := &endpointRules[i]
			if r.domains&d.dom == 0 {
				continue
			}
			if sc, matched, ok := r.lookup(rest, d.china); matched {
				return sc, ok
			}
		}
		return Scope{}, false
	}
	return Scope{}, false
}

// lookup reports whether rest, the labels left of the domain suffix, has
// the rule's shape (matched) and, if so, whether it yields a scope.
func (r *endpointRule) lookup(rest string, china bool) (sc Scope, matched, ok bool) {
	prefix, region, found := matchLabels(r.pattern, rest, china)
	if !found {
		return Scope{}, false, false
	}
	if r.refuse != "" {
		return Scope{}, true, false
	}
	sc = Scope{Service: r.service, Region: r.region}
	if sc.Region == "" {
		sc.Region = region
	}
	if sc.Service == "" {
		sc.Service = signingNameOf(prefix)
		if sc.Service == "" {
			// A several-label prefix that signingNames does not know: a
			// later rule may still know the host.
			return Scope{}, false, false
		}
	}
	return sc, true, true
}

// signingNameOf turns an endpoint prefix into its signing name, or "" when
// the prefix has several labels and is not a known alias.
func signingNameOf(prefix string) string {
	prefix = strings.TrimSuffix(prefix, "-fips")
	if name, ok := signingNames[prefix]; ok {
		return name
	}
	if strings.IndexByte(prefix, '.') >= 0 || prefix == "" {
		return ""
	}
	return prefix
}

// cutDomain returns the labels left of suffix when h is a strict subdomain of
// it; a bare suffix or a suffix that is only a string tail
// ("xamazonaws.com") does not count.
func cutDomain(h, suffix string) (string, bool) {
	if len(h) <= len(suffix)+1 || !strings.HasSuffix(h, suffix) || h[len(h)-len(suffix)-1] != '.' {
		return "", false
	}
	return h[:len(h)-len(suffix)-1], true
}

// matchLabels matches labels against pattern (see endpointRule) from the
// right, without allocating.
func matchLabels(pattern, labels string, china bool) (prefix, region string, ok bool) {
	for pattern != "" {
		var tok string
		pattern, tok = splitLast(pattern)
		switch tok {
		case "**":
			return prefix, region, true
		case "{prefix}":
			if labels == "" {
				return "", "", false
			}
			return labels, region, true
		}
		if labels == "" {
			return "", "", false
		}
		var lab string
		labels, lab = splitLast(labels)
		switch {
		case tok == "*":
		case tok == "{svc}":
			prefix = lab
		case strings.HasSuffix(tok, "{region}"):
			pre := tok[:len(tok)-len("{region}")]
			if !strings.HasPrefix(lab, pre) || !validRegion(lab[len(pre):], china) {
				return "", "", false
			}
			region = lab[len(pre):]
		case strings.HasSuffix(tok, "[-fips]"):
			base := tok[:len(tok)-len("[-fips]")]
			if !strings.HasPrefix(lab, base) || (len(lab) != len(base) && lab[len(base):] != "-fips") {
				return "", "", false
			}
		case strings.HasSuffix(tok, "*"):
			pre := tok[:len(tok)-1]
			if len(lab) <= len(pre) || !strings.HasPrefix(lab, pre) {
				return "", "", false
			}
		default:
			if lab != tok {
				return "", "", false
			}
		}
	}
	return prefix, region, labels == ""
}

// splitLast splits "a.b.c" into "a.b" and "c".
func splitLast(s string) (rest, last string) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", s
	}
	return s[:i], s[i+1:]
}

// validRegion checks the shape of a commercial, GovCloud or China region
// name (area-[gov-]direction-number) so that a label like "website-us-east-1"
// or "external-1" is never taken for a region. China regions are valid only
// under China domains and the others only outside them.
func validRegion(s string, china bool) bool {
	area, rest, ok := strings.Cut(s, "-")
	if !ok {
		return false
	}
	switch area {
	case "us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx":
		if china {
			return false
		}
	case "cn":
		if !china {
			return false
		}
	default:
		return false
	}
	if area == "us" {
		rest = strings.TrimPrefix(rest, "gov-")
	}
	dir, num, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	switch dir {
	case "east", "west", "north", "south", "central", "northeast", "northwest", "southeast", "southwest":
	default:
		return false
	}
	if len(num) == 0 || len(num) > 2 || num[0] == '0' {
		return false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return false
		}
	}
	return true
}

// normalizeHost lower-cases host and drops a port and one trailing dot. It
// refuses IP literals and anything that is not a plain DNS name of letters,
// digits and hyphens, since no AWS endpoint looks otherwise.
func normalizeHost(host string) (string, bool) {
	if host == "" || host[0] == '[' {
		return "", false
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		port := host[i+1:]
		if port == "" || len(port) > 5 {
			return "", false
		}
		for j := 0; j < len(port); j++ {
			if port[j] < '0' || port[j] > '9' {
				return "", false
			}
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > maxHostLen {
		return "", false
	}
	label := 0
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c == '.':
			if label == 0 || host[i-1] == '-' {
				return "", false
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-':
			if label == 0 {
				return "", false
			}
		default:
			return "", false
		}
		label++
		if label > 63 {
			return "", false
		}
	}
	if host[len(host)-1] == '-' {
		return "", false
	}
	return strings.ToLower(host), true
}
