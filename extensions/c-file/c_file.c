/*
 * c-file: a signet credential provider in C, and a native
 * credential_process helper from the same source.
 *
 * It reads an AWS shared-credentials INI file (as a Vault agent or a
 * similar sidecar keeps it up to date) and prints the keys of one profile
 * as a credential_process JSON object:
 *
 *   c-file [PROFILE [FILE]]
 *
 * PROFILE defaults to $AWS_PROFILE, then "default"; FILE to
 * $AWS_SHARED_CREDENTIALS_FILE, then /config/credentials (under signet:
 * the source's `dir`, mounted read-only at /config). A profile's keys:
 * aws_access_key_id, aws_secret_access_key, aws_session_token (or the
 * older aws_security_token) and, when the writer knows it,
 * expiration or aws_expiration (RFC 3339), passed on as Expiration.
 *
 * Under signet it also logs which profile it read through the host's
 * `signet.log` import (ABI.md section 4); natively that line goes to
 * stderr. Nothing secret is ever written but the JSON on stdout.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (1 << 20) /* a credentials file is small; memory is capped */
#define MAX_VALUE 4096

#ifdef __wasm__
/* signet.log(level, msg_ptr, msg_len) -> status; level 1 is info. */
__attribute__((import_module("signet"), import_name("log")))
int32_t signet_log(int32_t level, const char *msg, int32_t len);
#endif

static void log_info(const char *msg) {
#ifdef __wasm__
	if (signet_log(1, msg, (int32_t)strlen(msg)) == 0)
		return;
#endif
	fprintf(stderr, "c-file: %s\n", msg);
}

static int fail(const char *what, const char *detail) {
	fprintf(stderr, "c-file: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	return 1;
}

/* read_file reads a whole file into a NUL-terminated buffer. */
static char *read_file(const char *path, const char **err) {
	FILE *f = fopen(path, "rb");
	if (!f) {
		*err = "cannot open the credentials file (under signet: is the source's wasm `dir` set?)";
		return NULL;
	}
	char *buf = malloc(MAX_FILE + 1);
	if (!buf) {
		fclose(f);
		*err = "out of memory";
		return NULL;
	}
	size_t n = fread(buf, 1, MAX_FILE + 1, f);
	int bad = ferror(f);
	fclose(f);
	if (bad || n > MAX_FILE) {
		free(buf);
		*err = bad ? "cannot read the credentials file" : "the credentials file is over 1 MiB";
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static char *trim(char *s) {
	while (*s && isspace((unsigned char)*s))
		s++;
	char *end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

struct profile {
	char key_id[MAX_VALUE], secret[MAX_VALUE], token[MAX_VALUE], expiration[MAX_VALUE];
	int found;
};

static int set(char *dst, const char *value) {
	if (strlen(value) >= MAX_VALUE)
		return -1;
	strcpy(dst, value);
	return 0;
}

/*
 * parse reads the INI text and fills p with the keys of section name.
 * Sections may repeat; a later value wins, as in the AWS CLI. "[profile
 * NAME]" (the config file's spelling) is taken for "[NAME]". Lines that
 * start with # or ; are comments. It returns 0, or -1 for a value too long.
 */
static int parse(char *text, const char *name, struct profile *p) {
	int in = 0;
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *l = trim(line);
		if (*l == '\0' || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *close = strchr(l, ']');
			if (!close) {
				in = 0;
				continue;
			}
			*close = '\0';
			char *section = trim(l + 1);
			if (strncmp(section, "profile", 7) == 0 && isspace((unsigned char)section[7]))
				section = trim(section + 8);
			in = strcmp(section, name) == 0;
			p->found |= in;
			continue;
		}
		char *eq = strchr(l, '=');
		if (!in || !eq)
			continue;
		*eq = '\0';
		char *key = trim(l), *value = trim(eq + 1);
		for (char *k = key; *k; k++)
			*k = (char)tolower((unsigned char)*k);
		int r = 0;
		if (strcmp(key, "aws_access_key_id") == 0)
			r = set(p->key_id, value);
		else if (strcmp(key, "aws_secret_access_key") == 0)
			r = set(p->secret, value);
		else if (strcmp(key, "aws_session_token") == 0 || strcmp(key, "aws_security_token") == 0)
			r = set(p->token, value);
		else if (strcmp(key, "expiration") == 0 || strcmp(key, "aws_expiration") == 0)
			r = set(p->expiration, value);
		if (r)
			return -1;
	}
	return 0;
}

/* rfc3339ish accepts the characters of an RFC 3339 time; signet checks the rest. */
static int rfc3339ish(const char *s) {
	if (strlen(s) < 20 || !isdigit((unsigned char)s[0]))
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s) && !strchr("-:.TtZz+", *s))
			return 0;
	return 1;
}

/* put_json_string writes s as a JSON string. */
static void put_json_string(const char *s) {
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

int main(int argc, char **argv) {
	const char *name = argc > 1 ? argv[1] : getenv("AWS_PROFILE");
	const char *path = argc > 2 ? argv[2] : getenv("AWS_SHARED_CREDENTIALS_FILE");
	if (!name || !*name)
		name = "default";
	if (!path || !*path)
		path = "/config/credentials";
	if (argc > 3)
		return fail("usage", "c-file [PROFILE [FILE]]");

	const char *err = NULL;
	char *text = read_file(path, &err);
	if (!text)
		return fail(err, path);
	static struct profile p;
	if (parse(text, name, &p) != 0)
		return fail("a value is over 4 KiB in profile", name);
	free(text);
	if (!p.found)
		return fail("no such profile in the credentials file", name);
	if (!p.key_id[0] || !p.secret[0])
		return fail("the profile lacks aws_access_key_id or aws_secret_access_key", name);
	if (p.expiration[0] && !rfc3339ish(p.expiration))
		return fail("the profile's expiration is not an RFC 3339 time", name);

	char msg[512];
	snprintf(msg, sizeof msg, "read profile %s from %s%s%s", name, path,
	         p.expiration[0] ? ", expires " : "", p.expiration);
	log_info(msg);

	printf("{\"Version\":1,\"AccessKeyId\":");
	put_json_string(p.key_id);
	printf(",\"SecretAccessKey\":");
	put_json_string(p.secret);
	if (p.token[0]) {
		printf(",\"SessionToken\":");
		put_json_string(p.token);
	}
	if (p.expiration[0]) {
		printf(",\"Expiration\":");
		put_json_string(p.expiration);
	}
	printf("}\n");
	return fflush(stdout) == 0 ? 0 : fail("cannot write to stdout", NULL);
}
