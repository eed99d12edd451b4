package signer

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	type want struct{ service, region string } // zero: unknown
	tests := []struct {
		host string
		want want
	}{
		// Regional, every shape of service name.
		{"sqs.us-east-1.amazonaws.com", want{"sqs", "us-east-1"}},
		{"sns.eu-west-1.amazonaws.com", want{"sns", "eu-west-1"}},
		{"kinesis.ap-southeast-2.amazonaws.com", want{"kinesis", "ap-southeast-2"}},
		{"logs.us-west-2.amazonaws.com", want{"logs", "us-west-2"}},
		{"states.eu-central-1.amazonaws.com", want{"states", "eu-central-1"}},
		{"sync-states.eu-central-1.amazonaws.com", want{"states", "eu-central-1"}},
		{"dynamodb.us-east-2.amazonaws.com", want{"dynamodb", "us-east-2"}},
		{"streams.dynamodb.us-east-2.amazonaws.com", want{"dynamodb", "us-east-2"}},
		{"elasticloadbalancing.sa-east-1.amazonaws.com", want{"elasticloadbalancing", "sa-east-1"}},
		{"ec2.ca-central-1.amazonaws.com", want{"ec2", "ca-central-1"}},
		{"autoscaling.ap-northeast-1.amazonaws.com", want{"autoscaling", "ap-northeast-1"}},
		{"cognito-idp.eu-north-1.amazonaws.com", want{"cognito-idp", "eu-north-1"}},
		{"cognito-identity.us-east-1.amazonaws.com", want{"cognito-identity", "us-east-1"}},
		{"secretsmanager.me-south-1.amazonaws.com", want{"secretsmanager", "me-south-1"}},
		{"kms.af-south-1.amazonaws.com", want{"kms", "af-south-1"}},
		{"ssm.il-central-1.amazonaws.com", want{"ssm", "il-central-1"}},
		{"apigateway.mx-central-1.amazonaws.com", want{"apigateway", "mx-central-1"}},
		{"lambda.ca-west-1.amazonaws.com", want{"lambda", "ca-west-1"}},
		{"monitoring.us-west-1.amazonaws.com", want{"monitoring", "us-west-1"}},
		{"iot.us-east-1.amazonaws.com", want{"iot", "us-east-1"}},
		{"sts.us-west-2.amazonaws.com", want{"sts", "us-west-2"}},
		{"organizations.us-east-1.amazonaws.com", want{"organizations", "us-east-1"}},
		{"shield.us-east-1.amazonaws.com", want{"shield", "us-east-1"}},
		{"globalaccelerator.us-west-2.amazonaws.com", want{"globalaccelerator", "us-west-2"}},
		{"es.us-east-1.amazonaws.com", want{"es", "us-east-1"}},
		{"aoss.us-east-1.amazonaws.com", want{"aoss", "us-east-1"}},
		{"ecr.us-east-1.amazonaws.com", want{"ecr", "us-east-1"}},
		{"rds.eu-west-3.amazonaws.com", want{"rds", "eu-west-3"}},
		{"ap-southeast-7.amazonaws.com", want{}},
		// Endpoint prefixes whose signing name differs.
		{"runtime.sagemaker.us-east-1.amazonaws.com", want{"sagemaker", "us-east-1"}},
		{"api.sagemaker.eu-west-1.amazonaws.com", want{"sagemaker", "eu-west-1"}},
		{"api.ecr.us-west-2.amazonaws.com", want{"ecr", "us-west-2"}},
		{"email.us-east-1.amazonaws.com", want{"ses", "us-east-1"}},
		{"email-fips.us-west-2.amazonaws.com", want{"ses", "us-west-2"}},
		{"pinpoint.us-east-1.amazonaws.com", want{"mobiletargeting", "us-east-1"}},
		{"data.iot.us-east-1.amazonaws.com", want{"iotdata", "us-east-1"}},
		{"data-ats.iot.eu-west-1.amazonaws.com", want{"iotdata", "eu-west-1"}},
		{"a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com", want{"iotdata", "us-east-1"}},
		{"data.iot-fips.us-east-1.amazonaws.com", want{"iotdata", "us-east-1"}},
		{"data.jobs.iot.us-east-1.amazonaws.com", want{"iot-jobs-data", "us-east-1"}},
		{"api.tunneling.iot.us-east-1.amazonaws.com", want{"IoTSecuredTunneling", "us-east-1"}},
		{"greengrass-ats.iot.us-gov-east-1.amazonaws.com", want{"greengrass", "us-gov-east-1"}},
		{"c2f2b4a9e0ab12.credentials.iot.us-east-1.amazonaws.com", want{}},
		{"runtime.lex.us-east-1.amazonaws.com", want{"lex", "us-east-1"}},
		{"runtime-v2-lex.us-east-1.amazonaws.com", want{"lex", "us-east-1"}},
		{"bedrock-runtime.us-east-1.amazonaws.com", want{"bedrock", "us-east-1"}},
		{"bedrock-agent-runtime.us-west-2.amazonaws.com", want{"bedrock", "us-west-2"}},
		{"api.pricing.us-east-1.amazonaws.com", want{"pricing", "us-east-1"}},
		{"servicecatalog-appregistry.us-east-1.amazonaws.com", want{"servicecatalog", "us-east-1"}},
		{"verification.signer-fips.us-east-1.amazonaws.com", want{"signer", "us-east-1"}},
		{"mturk-requester-sandbox.us-east-1.amazonaws.com", want{"mturk-requester", "us-east-1"}},
		{"foo.bar.us-east-1.amazonaws.com", want{}},
		// Global.
		{"iam.amazonaws.com", want{"iam", "us-east-1"}},
		{"iam-fips.amazonaws.com", want{"iam", "us-east-1"}},
		{"iam.global.api.aws", want{"iam", "us-east-1"}},
		{"sts.amazonaws.com", want{"sts", "us-east-1"}},
		{"route53.amazonaws.com", want{"route53", "us-east-1"}},
		{"cloudfront.amazonaws.com", want{"cloudfront", "us-east-1"}},
		{"budgets.amazonaws.com", want{"budgets", "us-east-1"}},
		{"global.health.amazonaws.com", want{"health", "us-east-1"}},
		{"queue.amazonaws.com", want{"sqs", "us-east-1"}},
		{"us-west-2.queue.amazonaws.com", want{"sqs", "us-west-2"}},
		{"ec2.amazonaws.com", want{}},
		// China.
		{"sqs.cn-north-1.amazonaws.com.cn", want{"sqs", "cn-north-1"}},
		{"iam.cn-north-1.amazonaws.com.cn", want{"iam", "cn-north-1"}},
		{"route53.amazonaws.com.cn", want{"route53", "cn-northwest-1"}},
		{"organizations.cn-northwest-1.amazonaws.com.cn", want{"organizations", "cn-northwest-1"}},
		{"s3.cn-northwest-1.amazonaws.com.cn", want{"s3", "cn-northwest-1"}},
		{"my-bucket.s3.cn-north-1.amazonaws.com.cn", want{"s3", "cn-north-1"}},
		{"abcdef1234.execute-api.cn-north-1.amazonaws.com.cn", want{"execute-api", "cn-north-1"}},
		{"prefix.ats.iot.cn-north-1.amazonaws.com.cn", want{"iotdata", "cn-north-1"}},
		{"lambda.cn-north-1.api.amazonwebservices.com.cn", want{"lambda", "cn-north-1"}},
		{"sqs.cn-north-1.amazonaws.com", want{}},
		{"sqs.us-east-1.amazonaws.com.cn", want{}},
		// GovCloud.
		{"iam.us-gov.amazonaws.com", want{"iam", "us-gov-west-1"}},
		{"route53.us-gov.amazonaws.com", want{"route53", "us-gov-west-1"}},
		{"sts.us-gov-east-1.amazonaws.com", want{"sts", "us-gov-east-1"}},
		{"s3-fips.us-gov-west-1.amazonaws.com", want{"s3", "us-gov-west-1"}},
		// FIPS and dual-stack.
		{"kms-fips.us-east-1.amazonaws.com", want{"kms", "us-east-1"}},
		{"sts-fips.us-west-2.amazonaws.com", want{"sts", "us-west-2"}},
		{"fips.batch.us-east-1.amazonaws.com", want{"batch", "us-east-1"}},
		{"fips.eks.us-east-1.amazonaws.com", want{"eks", "us-east-1"}},
		{"lambda.us-east-1.api.aws", want{"lambda", "us-east-1"}},
		{"lambda-fips.us-east-1.api.aws", want{"lambda", "us-east-1"}},
		{"aos.us-east-1.api.aws", want{"es", "us-east-1"}},
		{"ecr.us-east-1.api.aws", want{"ecr", "us-east-1"}},
		{"sqs.dualstack.us-east-1.amazonaws.com", want{"sqs", "us-east-1"}},
		// S3.
		{"s3.amazonaws.com", want{"s3", "us-east-1"}},
		{"my-bucket.s3.amazonaws.com", want{"s3", "us-east-1"}},
		{"s3-external-1.amazonaws.com", want{"s3", "us-east-1"}},
		{"s3.us-west-2.amazonaws.com", want{"s3", "us-west-2"}},
		{"s3-us-west-2.amazonaws.com", want{"s3", "us-west-2"}},
		{"my-bucket.s3-eu-west-1.amazonaws.com", want{"s3", "eu-west-1"}},
		{"my-bucket.s3.us-west-2.amazonaws.com", want{"s3", "us-west-2"}},
		{"my.bucket.s3.us-west-2.amazonaws.com", want{"s3", "us-west-2"}},
		{"s3.dualstack.eu-central-1.amazonaws.com", want{"s3", "eu-central-1"}},
		{"my-bucket.s3.dualstack.eu-central-1.amazonaws.com", want{"s3", "eu-central-1"}},
		{"s3-fips.dualstack.us-east-1.amazonaws.com", want{"s3", "us-east-1"}},
		{"s3-fips.us-east-2.amazonaws.com", want{"s3", "us-east-2"}},
		{"myap-123456789012.s3-accesspoint.us-west-2.amazonaws.com", want{"s3", "us-west-2"}},
		{"myap-123456789012.s3-accesspoint.dualstack.us-west-2.amazonaws.com", want{"s3", "us-west-2"}},
		{"123456789012.s3-control.us-east-1.amazonaws.com", want{"s3", "us-east-1"}},
		{"s3-control.us-east-1.amazonaws.com", want{"s3", "us-east-1"}},
		{"s3-control-fips.dualstack.us-east-2.amazonaws.com", want{"s3", "us-east-2"}},
		{"myolap-123456789012.s3-object-lambda.us-east-1.amazonaws.com", want{"s3-object-lambda", "us-east-1"}},
		{"s3express-control.us-west-2.amazonaws.com", want{"s3express", "us-west-2"}},
		{"mybucket--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com", want{"s3express", "us-west-2"}},
		{"myap-123456789012.op-01234567890123456.s3-outposts.us-west-2.amazonaws.com", want{"s3-outposts", "us-west-2"}},
		{"my-bucket.s3-website-us-east-1.amazonaws.com", want{}},
		{"my-bucket.s3-website.eu-central-1.amazonaws.com", want{}},
		{"my-bucket.s3-accelerate.amazonaws.com", want{}},
		{"mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com", want{}},
		// Id-prefixed services.
		{"a1b2c3d4e5.execute-api.us-east-1.amazonaws.com", want{"execute-api", "us-east-1"}},
		{"abcdefghijklmnopqrstuvwxyz.appsync-api.eu-west-2.amazonaws.com", want{"appsync", "eu-west-2"}},
		{"abcdefghijklmnopqrstuvwxyz.appsync-realtime-api.eu-west-2.amazonaws.com", want{"appsync", "eu-west-2"}},
		{"abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws", want{"lambda", "us-east-1"}},
		{"search-mydomain-abc123def456.us-east-1.es.amazonaws.com", want{"es", "us-east-1"}},
		{"vpc-mydomain-abc123def456.eu-west-1.es.amazonaws.com", want{"es", "eu-west-1"}},
		{"abc123def456ghi.us-east-1.aoss.amazonaws.com", want{"aoss", "us-east-1"}},
		{"search-movies-abc123.us-east-1.cloudsearch.amazonaws.com", want{"cloudsearch", "us-east-1"}},
		{"mycluster.cluster-c8xyzabc.us-east-1.neptune.amazonaws.com", want{"neptune-db", "us-east-1"}},
		// Spelling: case, port, trailing dot.
		{"SQS.US-EAST-1.AMAZONAWS.COM", want{"sqs", "us-east-1"}},
		{"sqs.us-east-1.amazonaws.com:443", want{"sqs", "us-east-1"}},
		{"sqs.us-east-1.amazonaws.com.", want{"sqs", "us-east-1"}},
		{"My.Bucket.S3.US-WEST-2.amazonaws.com.:8443", want{"s3", "us-west-2"}},
		// Not AWS, or not well formed.
		{"amazonaws.com", want{}},
		{"amazonaws.com.evil.com", want{}},
		{"s3.amazonaws.com.attacker.net", want{}},
		{"sqs.us-east-1.amazonaws.com.evil.com", want{}},
		{"sqs.us-east-1.xamazonaws.com", want{}},
		{"example.com", want{}},
		{"localhost:4566", want{}},
		{"127.0.0.1:9000", want{}},
		{"[::1]:443", want{}},
		{"", want{}},
		{".", want{}},
		{"sqs..us-east-1.amazonaws.com", want{}},
		{"sqs.us-east-1.amazonaws.com:", want{}},
		{"sqs.us-east-1.amazonaws.com:https", want{}},
		{"sq_s.us-east-1.amazonaws.com", want{}},
		{"sqs.us-east-01.amazonaws.com", want{}},
		{"sqs.moon-east-1.amazonaws.com", want{}},
	}
	if len(tests) < 70 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			sc, ok := Lookup(tt.host)
			wantOK := tt.want.service != ""
			if ok != wantOK || sc.Service != tt.want.service || sc.Region != tt.want.region {
				t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tt.host, sc, ok, tt.want, wantOK)
			}
		})
	}
}

// TestEndpointRulesWellFormed keeps the table honest: every rule can produce
// a whole scope, and the leftmost-only tokens are leftmost.
func TestEndpointRulesWellFormed(t *testing.T) {
	for i, r := range endpointRules {
		toks := strings.Split(r.pattern, ".")
		for j, tok := range toks {
			if (tok == "**" || tok == "{prefix}") && j != 0 {
				t.Errorf("rule %d %q: %s must be leftmost", i, r.pattern, tok)
			}
			if tok == "" {
				t.Errorf("rule %d %q: empty label", i, r.pattern)
			}
		}
		if r.domains == 0 {
			t.Errorf("rule %d %q: no domain", i, r.pattern)
		}
		if r.refuse != "" {
			continue
		}
		if r.service == "" && !strings.Contains(r.pattern, "{svc}") && !strings.Contains(r.pattern, "{prefix}") {
			t.Errorf("rule %d %q: no service", i, r.pattern)
		}
		if r.region == "" && !strings.Contains(r.pattern, "{region}") {
			t.Errorf("rule %d %q: no region", i, r.pattern)
		}
	}
	for prefix, name := range signingNames {
		if strings.HasSuffix(prefix, "-fips") || name == "" {
			t.Errorf("signingNames[%q] = %q", prefix, name)
		}
	}
}

func TestValidRegion(t *testing.T) {
	for _, r := range []string{"us-east-1", "us-gov-west-1", "ap-southeast-7", "eu-central-2", "me-central-1", "il-central-1", "mx-central-1", "ca-west-1"} {
		if !validRegion(r, false) {
			t.Errorf("%s rejected", r)
		}
	}
	for _, r := range []string{"cn-north-1", "cn-northwest-1"} {
		if !validRegion(r, true) || validRegion(r, false) {
			t.Errorf("%s: partition check wrong", r)
		}
	}
	for _, r := range []string{"", "us", "us-east", "us-east-", "us-east-0", "us-east-100", "website-us-east-1", "external-1", "us-gov-1", "us-east-1a", "fips-us-gov-west-1"} {
		if validRegion(r, false) || validRegion(r, true) {
			t.Errorf("%q accepted", r)
		}
	}
}
