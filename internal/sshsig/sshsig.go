// Package sshsig signs and verifies messages in OpenSSH's SSHSIG format, the signatures of
// ssh-keygen -Y sign, and checks signers against an allowed_signers file.
package sshsig

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Namespace is the namespace hardtrail signs in: a signature made for another purpose (such
// as git commits or files) does not verify as an operator's signature, nor the reverse.
const Namespace = "hardtrail"

const (
	magic      = "SSHSIG"
	version    = 1
	pemType    = "SSH SIGNATURE"
	hashSHA512 = "sha512"
	hashSHA256 = "sha256"
)

// ErrBadSignature is returned when a signature does not verify over the message.
var ErrBadSignature = errors.New("the signature does not verify")

// ErrNotAllowed is returned when the signing key is not allowed for the identity.
var ErrNotAllowed = errors.New("the signing key is not in the allowed signers for the identity")

// blob is the SSHSIG structure, in the wire format of RFC 4251.
type blob struct {
	PublicKey     []byte
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Signature     []byte
}

// signedData is what the key signs: the preamble, namespace, reserved, the hash algorithm and
// the hash of the message.
type signedData struct {
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Hash          []byte
}

func toSign(namespace, alg string, message []byte) ([]byte, error) {
	var h []byte
	switch alg {
	case hashSHA512:
		s := sha512.Sum512(message)
		h = s[:]
	case hashSHA256:
		s := sha256.Sum256(message)
		h = s[:]
	default:
		return nil, fmt.Errorf("sshsig: unsupported hash algorithm %q", alg)
	}
	return append([]byte(magic), ssh.Marshal(signedData{namespace, "", alg, h})...), nil
}

// LoadSigner reads an unencrypted OpenSSH private key (such as ~/.ssh/id_ed25519).
func LoadSigner(file string) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("signing key %s is protected by a passphrase, which hardtrail does not ask for: use a key without one, or sign with ssh-keygen -Y sign -n %s", file, Namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", file, err)
	}
	return s, nil
}

// Sign signs message in namespace and returns the armored signature, as ssh-keygen -Y sign
// writes it. RSA keys sign with rsa-sha2-512.
func Sign(s ssh.Signer, namespace string, message []byte) ([]byte, error) {
	data, err := toSign(namespace, hashSHA512, message)
	if err != nil {
		return nil, err
	}
	var sig *ssh.Signature
	if as, ok := s.(ssh.AlgorithmSigner); ok && s.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = s.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, fmt.Errorf("sshsig: sign: %w", err)
	}
	raw := append([]byte(magic), ssh.Marshal(struct{ Version uint32 }{version})...)
	raw = append(raw, ssh.Marshal(blob{s.PublicKey().Marshal(), namespace, "", hashSHA512, ssh.Marshal(sig)})...)
	return armor(raw), nil
}

// armor writes the PEM-like armor of ssh-keygen: base64 in lines of 70 characters.
func armor(raw []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(raw)
	var b bytes.Buffer
	b.WriteString("-----BEGIN " + pemType + "-----\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n-----END " + pemType + "-----\n")
	return b.Bytes()
}

// Verify checks an armored signature over message in namespace and returns the key that made
// it.
func Verify(armored, message []byte, namespace string) (ssh.PublicKey, error) {
	p, rest := pem.Decode(bytes.TrimSpace(armored))
	if p == nil || p.Type != pemType || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("sshsig: not an armored SSH signature (-----BEGIN SSH SIGNATURE-----)")
	}
	raw := p.Bytes
	if !bytes.HasPrefix(raw, []byte(magic)) {
		return nil, errors.New("sshsig: the signature lacks the SSHSIG preamble")
	}
	var v struct {
		Version uint32
		Rest    []byte `ssh:"rest"`
	}
	if err := ssh.Unmarshal(raw[len(magic):], &v); err != nil {
		return nil, fmt.Errorf("sshsig: %w", err)
	}
	if v.Version != version {
		return nil, fmt.Errorf("sshsig: version %d, want %d", v.Version, version)
	}
	var b blob
	if err := ssh.Unmarshal(v.Rest, &b); err != nil {
		return nil, fmt.Errorf("sshsig: %w", err)
	}
	if b.Namespace != namespace {
		return nil, fmt.Errorf("sshsig: the signature is in namespace %q, want %q", b.Namespace, namespace)
	}
	pub, err := ssh.ParsePublicKey(b.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("sshsig: public key: %w", err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(b.Signature, &sig); err != nil {
		return nil, fmt.Errorf("sshsig: signature: %w", err)
	}
	if pub.Type() == ssh.KeyAlgoRSA && sig.Format == ssh.KeyAlgoRSA {
		return nil, errors.New("sshsig: RSA signature with SHA-1 (ssh-rsa) is refused")
	}
	data, err := toSign(namespace, b.HashAlgorithm, message)
	if err != nil {
		return nil, err
	}
	if err := pub.Verify(data, &sig); err != nil {
		return nil, fmt.Errorf("%w (key %s)", ErrBadSignature, ssh.FingerprintSHA256(pub))
	}
	return pub, nil
}

// AllowedSigner is one line of an allowed_signers file: principals and a key.
type AllowedSigner struct {
	Principals []string
	Namespaces []string // empty: any
	Key        ssh.PublicKey
	Line       int
}

// ParseAllowedSigners reads the allowed_signers format of ssh-keygen(1): one
// "PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]" per line. The namespaces option is honoured;
// cert-authority and validity options are refused with the line's number.
func ParseAllowedSigners(name string, data []byte) ([]AllowedSigner, error) {
	var out []AllowedSigner
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		principals, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		s := AllowedSigner{Principals: strings.Split(principals, ","), Line: n}
		// Options come before the key when the next field is not a key type.
		if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rest)); err == nil {
			s.Key = pub
		} else {
			opts, keyText := splitOptions(rest)
			for _, o := range opts {
				k, v, _ := strings.Cut(o, "=")
				switch strings.ToLower(k) {
				case "namespaces":
					s.Namespaces = strings.Split(strings.Trim(v, `"`), ",")
				default:
					return nil, fmt.Errorf("%s:%d: option %q is not supported (only namespaces=)", name, n, k)
				}
			}
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(keyText))
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, n, err)
			}
			s.Key = pub
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// splitOptions splits the options field (comma separated, quoted values may hold spaces and
// commas) from the key text after it.
func splitOptions(s string) ([]string, string) {
	inQuote := false
	for i, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
		case c == ' ' && !inQuote:
			var opts []string
			cur, q := "", false
			for _, d := range s[:i] {
				switch {
				case d == '"':
					q = !q
					cur += string(d)
				case d == ',' && !q:
					opts = append(opts, cur)
					cur = ""
				default:
					cur += string(d)
				}
			}
			return append(opts, cur), strings.TrimSpace(s[i:])
		}
	}
	return nil, s
}

// Allowed returns the principals of signers that match identity (a glob when identity is
// empty: every principal of the key) and that allow key in namespace, or ErrNotAllowed.
func Allowed(signers []AllowedSigner, key ssh.PublicKey, identity, namespace string) ([]string, error) {
	var out []string
	for _, s := range signers {
		if !bytes.Equal(s.Key.Marshal(), key.Marshal()) {
			continue
		}
		if len(s.Namespaces) > 0 && !matchAny(s.Namespaces, namespace) {
			continue
		}
		for _, p := range s.Principals {
			if identity == "" {
				out = append(out, p)
			} else if ok, _ := path.Match(p, identity); ok {
				out = append(out, identity)
			}
		}
	}
	if len(out) == 0 {
		who := identity
		if who == "" {
			who = "any identity"
		}
		return nil, fmt.Errorf("%w (%s, key %s)", ErrNotAllowed, who, ssh.FingerprintSHA256(key))
	}
	return out, nil
}

func matchAny(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}
