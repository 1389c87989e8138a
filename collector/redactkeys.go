package collector

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
)

// The names of settings whose values are secrets, and the ones that only look like it. One list
// drives every structural rule (key = value, key: value, `key value` directives, JSON, XML
// elements and attributes, YAML, header names): a key is secret when one of its words is a
// secret word (SecretWords), or ends with one, unless the whole key is a known non-secret
// setting (NonSecretKeys) or its last word says what the value describes (a length, a file, a
// method: NonSecretSuffixes), because such a value is a setting about a secret, not the secret.

// SecretWords are the words of a key name that make its value a secret. A key's words are its
// parts between '_', '-', '.', '/' and camelCase boundaries ("db_password", "clientSecret",
// "spring.datasource.password"); a word ending with one of the first group counts too
// ("requirepass", "bindpw", "masterauth", "apikey", "rocommunity").
var SecretWords = []string{
	"password", "passwd", "pass", "pwd", "pw", "passphrase", "secret", "token", "key", "psk",
	"community", "auth", "credential", "credentials", "private", "apikey", "bindpw",
	"requirepass", "masterauth", "privkey", "passcode",
}

// secretEndings are words a key's word may end with ("dbpassword", "rootpw").
var secretEndings = []string{
	"password", "passwd", "pass", "pwd", "pw", "passphrase", "secret", "token", "key", "psk",
	"community", "auth", "credential", "credentials",
}

// secretStarts are words a key's word may start with ("passwordhash", "secretkey").
var secretStarts = []string{"password", "passwd", "passphrase", "secret"}

// NonSecretKeys are settings whose names hold a secret word but whose values are not secrets:
// sshd's and PAM's switches, key files and algorithms, sysctl and login.defs limits. Compared
// in lowercase without '_', '-' and '.'.
var NonSecretKeys = []string{
	// sshd_config and `sshd -T`
	"PasswordAuthentication", "PermitEmptyPasswords", "KbdInteractiveAuthentication",
	"ChallengeResponseAuthentication", "PubkeyAuthentication", "HostbasedAuthentication",
	"AuthorizedKeysFile", "AuthorizedKeysCommand", "AuthorizedKeysCommandUser",
	"AuthorizedPrincipalsFile", "AuthorizedPrincipalsCommand", "AuthorizedPrincipalsCommandUser",
	"HostKey", "HostKeyAlgorithms", "HostKeyAgent", "HostCertificate", "TrustedUserCAKeys",
	"RevokedKeys", "PubkeyAcceptedKeyTypes", "PubkeyAcceptedAlgorithms", "PubkeyAuthOptions",
	"AuthenticationMethods", "MaxAuthTries", "KerberosOrLocalPasswd", "KerberosGetAFSToken",
	"GSSAPIKeyExchange", "GSSAPICleanupCredentials", "GSSAPIStoreCredentialsOnRekey",
	"ExposeAuthInfo", "RekeyLimit", "SecurityKeyProvider", "CASignatureAlgorithms",
	"HostbasedAcceptedAlgorithms", "HostbasedAcceptedKeyTypes", "IdentityFile", "AddKeysToAgent",
	"UpdateHostKeys", "StrictHostKeyChecking", "PreferredAuthentications", "NumberOfPasswordPrompts",
	"UserKnownHostsFile", "GlobalKnownHostsFile", "VerifyHostKeyDNS", "HashKnownHosts",
	// login.defs, pwquality.conf, PAM
	"PASS_MAX_DAYS", "PASS_MIN_DAYS", "PASS_WARN_AGE", "PASS_MIN_LEN", "PASS_MAX_LEN",
	"password_min_length", "passwordminlen", "minlen", "ENCRYPT_METHOD", "PASS_CHANGE_TRIES",
	"PASS_ALWAYS_WARN", "LOGIN_RETRIES", "PREVENT_NO_AUTH",
	// systemd-logind's keys are the machine's buttons
	"HandlePowerKey", "HandlePowerKeyLongPress", "HandleRebootKey", "HandleRebootKeyLongPress",
	"HandleSuspendKey", "HandleSuspendKeyLongPress", "HandleHibernateKey", "HandleHibernateKeyLongPress",
	// web servers and proxies: realm names and switches
	"auth_basic", "AuthType", "AuthName", "AuthBasicProvider", "AuthLDAPURL", "AuthLDAPBindDN",
	"AuthzLDAPAuthoritative", "auth_request", "auth_delay", "proxy_pass", "fastcgi_pass",
	"uwsgi_pass", "scgi_pass", "grpc_pass", "memcached_pass", "proxy_pass_header",
	"proxy_pass_request_headers", "proxy_pass_request_body", "fastcgi_pass_header",
	"proxy_ssl_password_file", "ssl_password_file", "ssl_certificate_key", "ssl_session_tickets",
	"ssl_session_ticket_key", "ssl_stapling_verify", "SSLCertificateKeyFile", "SSLPassPhraseDialog",
	// systemd and others
	"PrivateTmp", "PrivateDevices", "PrivateNetwork", "PrivateUsers", "PrivateMounts",
	"PrivateIPC", "KeyringMode", "LoadCredential", "SetCredential", "ImportCredential",
	"LoadCredentialEncrypted", "CredentialsDirectory", "tls-auth", "auth-user-pass",
	"auth-nocache", "auth-retry", "key-direction", "keysize", "rekey", "tcp_syncookies",
	"key_mgmt", "keyid", "keyserver", "keyring", "keyboard", "keymap", "public-key", "pubkey",
	"public_key_data", "client-certificate-data",
	// sysctl
	"net.core.netdev_rss_key",
}

// NonSecretSuffixes are last words of a key that make its value a setting about a secret: its
// length, the file it is in, the method, who uses it. A last word ending with one of them
// counts too ("keyfile", "passwordfile").
var NonSecretSuffixes = []string{
	"authentication", "length", "len", "minlen", "maxlen", "min", "max", "age", "days", "size",
	"bits", "timeout", "ttl", "lifetime", "expiry", "expires", "expire", "expiration", "interval",
	"file", "files", "path", "paths", "dir", "directory", "type", "types", "method", "methods",
	"mode", "algorithm", "algorithms", "algo", "cipher", "ciphers", "digest", "format", "enabled",
	"enable", "disabled", "disable", "required", "require", "policy", "command", "cmd", "program",
	"prompt", "tries", "retries", "retry", "attempts", "count", "rounds", "charset", "name",
	"names", "user", "username", "login", "email", "level", "strength", "quality", "complexity",
	"history", "reuse", "warn", "warning", "helper", "cache", "provider", "backend", "source",
	"order", "host", "hosts", "port", "server", "servers", "url", "uri", "endpoint", "scheme",
	"realm", "service", "socket", "schemes", "limits", "filter", "config", "identifier", "timer", "target", "unit", "protocol", "proto", "version", "dn",
	"options", "option", "limit", "delay", "refresh", "rotation", "location", "storage", "store",
	"manager", "agent", "fingerprint", "iterations", "check", "checks", "verify", "validation",
	"map", "maps", "list", "bytes", "pool", "usage", "support", "supported", "exchange", "flag",
	"flags", "prefix", "suffix", "pattern", "regex", "label", "class", "env", "header",
	"headers", "mgmt", "dialog", "tickets", "authoritative", "mount", "mounts", "users",
}

// nonSecretWords are words that end or start like a secret word but are not ("bypass",
// "hostkey", "pubkey").
var nonSecretWords = map[string]bool{
	"bypass": true, "compass": true, "trespass": true, "encompass": true, "overpass": true,
	"hostkey": true, "pubkey": true, "publickey": true, "monkey": true, "hotkey": true,
	"turnkey": true, "primarykey": true, "foreignkey": true, "sortkey": true, "oauth": true,
	"rekey": true, "whiskey": true, "jockey": true, "hockey": true, "donkey": true, "turkey": true,
	"secretary": true, "secretstorage": true, "secretservice": true, "preauth": true,
}

var (
	// The sets are built on first use, not at the start of every command.
	nonSecretKeySet    = sync.OnceValue(func() map[string]bool { return normSet(NonSecretKeys) })
	nonSecretSuffixSet = sync.OnceValue(func() map[string]bool { return normSet(NonSecretSuffixes) })
	secretWordSet      = sync.OnceValue(func() map[string]bool { return normSet(SecretWords) })
	// longSuffixes are the suffixes a longer last word may end with ("keyfile").
	longSuffixes = sync.OnceValue(func() (out []string) {
		for _, s := range NonSecretSuffixes {
			if len(s) >= 4 {
				out = append(out, s)
			}
		}
		return out
	})
)

func normSet(words []string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[normKey(w)] = true
	}
	return m
}

// normKey is a key in lowercase without '_', '-', '.' and '/'.
func normKey(k string) string {
	var sb strings.Builder
	sb.Grow(len(k))
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_' || c == '-' || c == '.' || c == '/':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// keyWords splits a key into lowercase words at '_', '-', '.', '/', ':' and camelCase
// boundaries ("AuthLDAPBindDN" is auth, ldap, bind, dn).
func keyWords(k string) []string {
	var out []string
	start := 0
	flush := func(end int) {
		if end > start {
			out = append(out, strings.ToLower(k[start:end]))
		}
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '_' || c == '-' || c == '.' || c == '/' || c == ':' {
			flush(i)
			start = i + 1
			continue
		}
		if i > start && isUpper(c) {
			prev := k[i-1]
			next := byte(0)
			if i+1 < len(k) {
				next = k[i+1]
			}
			// fooBar, or the last capital of an acronym before a word: LDAPBind.
			if isLowerOrDigit(prev) || (isUpper(prev) && isLower(next)) {
				flush(i)
				start = i
			}
		}
	}
	flush(len(k))
	return out
}

func isUpper(c byte) bool        { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool        { return 'a' <= c && c <= 'z' }
func isLowerOrDigit(c byte) bool { return isLower(c) || ('0' <= c && c <= '9') }

// IsSecretKey reports whether a setting named k holds a secret.
func IsSecretKey(k string) bool {
	k = strings.Trim(k, `-$@"'`)
	k = strings.TrimRight(k, ".:")
	if k == "" || len(k) > 128 {
		return false
	}
	if nonSecretKeySet()[normKey(k)] {
		return false
	}
	words := keyWords(k)
	if len(words) == 0 {
		return false
	}
	last := words[len(words)-1]
	if hasNonSecretSuffix(last) {
		return false
	}
	for _, w := range words {
		if secretWord(w) {
			return true
		}
	}
	return false
}

func hasNonSecretSuffix(w string) bool {
	if nonSecretSuffixSet()[w] {
		return true
	}
	for _, s := range longSuffixes() {
		if len(w) > len(s) && strings.HasSuffix(w, s) {
			return true
		}
	}
	return false
}

func secretWord(w string) bool {
	if nonSecretWords[w] {
		return false
	}
	if secretWordSet()[w] {
		return true
	}
	for _, s := range secretEndings {
		if len(w) > len(s) && strings.HasSuffix(w, s) {
			return true
		}
	}
	for _, s := range secretStarts {
		if len(w) > len(s) && strings.HasPrefix(w, s) {
			return true
		}
	}
	return false
}

// nonSecretValues are values a secret setting may have that are not secrets: switches, PAM
// control words, "none".
var nonSecretValues = map[string]bool{
	"yes": true, "no": true, "true": true, "false": true, "on": true, "off": true, "none": true,
	"null": true, "nil": true, "enabled": true, "disabled": true, "enable": true, "disable": true,
	"required": true, "requisite": true, "sufficient": true, "optional": true, "include": true,
	"substack": true, "any": true, "all": true, "default": true, "auto": true, "empty": true,
	"prohibit-password": true, "without-password": true, "forced-commands-only": true,
	"~": true, "{": true, "[": true, "{}": true, "[]": true,
}

// fileExts are extensions of file names a secret setting may name instead of holding the
// secret ("secret static.key", "tls-auth ta.key 0").
var fileExts = []string{".key", ".pem", ".crt", ".cer", ".der", ".p12", ".pfx", ".jks",
	".keystore", ".txt", ".conf", ".cfg", ".json", ".yaml", ".yml", ".pass", ".gpg", ".asc",
	".pub", ".csr", ".kdbx", ".db", ".secret", ".secrets", ".acl"}

// isNonSecretValue reports whether a secret setting's value v (quotes removed) is something
// other than a secret: empty, a switch, a reference to a secret kept elsewhere (a file, an
// environment variable, a template), a mask or a placeholder.
func isNonSecretValue(v []byte) bool {
	if len(v) == 0 || isMask(v) || startsWithPlaceholder(v) {
		return true
	}
	if len(v) <= 24 && nonSecretValues[strings.ToLower(string(v))] {
		return true
	}
	switch v[0] {
	case '/':
		// An absolute path, not a secret that begins with a slash.
		return len(v) > 1 && v[1] != '/' && !containsSpace(v)
	case '~', '.':
		return len(v) > 1 && v[1] == '/' || len(v) > 2 && string(v[:3]) == "../"
	case '$':
		// ${VAR}, $VAR, $(command), $dir/file and {{ }} templates name the secret, they do not
		// hold it.
		if len(v) > 1 && (v[1] == '{' || v[1] == '(') {
			return true
		}
		if i := bytes.IndexByte(v, '/'); i > 1 && isIdent(v[1:i]) && !containsSpace(v) {
			return true // a path under a variable: $dir/private/cakey.pem
		}
		return isEnvName(v[1:])
	case '%':
		return len(v) > 1 && v[1] == '('
	case '{':
		return len(v) > 1 && (v[1] == '{' || v[1] == '%')
	case '<':
		return len(v) > 1 && v[1] == '%'
	case '-':
		// A key block's first line, whose body the block rule redacts; not a whole key
		// written on one line with \n escapes (a cloud service account's JSON).
		return len(v) > 15 && string(v[:10]) == "-----BEGIN" && strings.Count(string(v), "-----") == 2 && strings.HasSuffix(string(v), "-----")
	case '[':
		// PAM's [success=1 default=ignore]
		return len(v) > 2 && v[len(v)-1] == ']' && containsByte(v, '=')
	}
	if len(v) <= 3 && isDigits(v) {
		return true // a switch or a count: no secret is this short
	}
	lv := strings.ToLower(string(v))
	if len(lv) <= 16 && algorithmName().MatchString(lv) {
		return true // OpenVPN's "auth SHA256"
	}
	if strings.HasPrefix(lv, "file:") || strings.HasPrefix(lv, "env:") {
		return true
	}
	if !containsSpace(v) {
		for _, e := range fileExts {
			if strings.HasSuffix(lv, e) && len(lv) > len(e) {
				return true
			}
		}
	}
	return false
}

// algorithmName matches digest and cipher names a secret-named directive may take.
var algorithmName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:sha|md5|aes|des|3des|blake2|hmac|rsa|ecdsa|ed25519|chacha20|camellia|bf|scram|none)[-\w]*$`)
})

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func isEnvName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		if !(isUpper(c) || c == '_' || (i > 0 && '0' <= c && c <= '9')) {
			return false
		}
	}
	return true
}

func isIdent(b []byte) bool {
	for i, c := range b {
		if !(isUpper(c) || isLower(c) || c == '_' || (i > 0 && '0' <= c && c <= '9')) {
			return false
		}
	}
	return len(b) > 0
}

func containsSpace(b []byte) bool {
	for _, c := range b {
		if c == ' ' || c == '\t' {
			return true
		}
	}
	return false
}

func containsByte(b []byte, x byte) bool {
	for _, c := range b {
		if c == x {
			return true
		}
	}
	return false
}
