package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hardtrail/hardtrail/internal/atomicfile"
)

// Key files. The private key is PEM "PRIVATE KEY" (PKCS#8), the public key PEM "PUBLIC KEY"
// (PKIX SubjectPublicKeyInfo): both are what OpenSSL reads, so an auditor can check a bundle's
// signature without hardtrail:
//
//	openssl pkeyutl -verify -pubin -inkey KEY.pub -rawin -in manifest.json -sigfile manifest.json.sig
const (
	privatePEMType = "PRIVATE KEY"
	publicPEMType  = "PUBLIC KEY"
)

// GenerateKey creates an ed25519 key pair from rnd (crypto/rand when nil) and writes prefix
// (the private key, mode 0600) and prefix.pub (the public key, mode 0644). Each file is created
// atomically, so a crash leaves no file or a whole one; the private key is written first. It
// refuses to overwrite either file, but for one case: when prefix holds a whole private key and
// prefix.pub is missing (a run that stopped between the two), it writes the public key of that
// private key. It returns the public key.
func GenerateKey(prefix string, rnd io.Reader) (ed25519.PublicKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	// A run killed after linking a file into place but before removing its temporary name
	// leaves the pair whole, so the next run writes nothing: it removes that name here.
	atomicfile.CleanStale(filepath.Dir(prefix))
	pubPath := prefix + ".pub"
	_, perr := os.Lstat(prefix)
	_, uerr := os.Lstat(pubPath)
	for p, err := range map[string]error{prefix: perr, pubPath: uerr} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	switch {
	case perr == nil && uerr != nil:
		priv, err := LoadPrivateKey(prefix)
		if err != nil {
			return nil, fmt.Errorf("%s already exists and is not a whole key (%w): refusing to overwrite it (choose another -o or remove it)", prefix, err)
		}
		pub := priv.Public().(ed25519.PublicKey)
		if err := writeNew(pubPath, MarshalPublicKey(pub), 0o644); err != nil {
			return nil, err
		}
		return pub, nil
	case perr == nil:
		return nil, fmt.Errorf("%s already exists: refusing to overwrite a key (choose another -o or remove it)", prefix)
	case uerr == nil:
		return nil, fmt.Errorf("%s already exists: refusing to overwrite a key (choose another -o or remove it)", pubPath)
	}
	pub, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := writeNew(prefix, MarshalPrivateKey(priv), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(pubPath, MarshalPublicKey(pub), 0o644); err != nil {
		os.Remove(prefix)
		return nil, err
	}
	return pub, nil
}

// writeNew creates path (it must not exist) with data and mode, atomically.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	err := atomicfile.Create(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite a key (choose another -o or remove it)", path)
	}
	if err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}

// MarshalPrivateKey encodes a private key as PEM PKCS#8.
func MarshalPrivateKey(k ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic("evidence: marshal ed25519 key: " + err.Error()) // cannot fail for ed25519
	}
	return pem.EncodeToMemory(&pem.Block{Type: privatePEMType, Bytes: der})
}

// MarshalPublicKey encodes a public key as PEM PKIX.
func MarshalPublicKey(k ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		panic("evidence: marshal ed25519 key: " + err.Error())
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicPEMType, Bytes: der})
}

// ParsePrivateKey reads a PEM PKCS#8 ed25519 private key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	der, err := onePEM(data, privatePEMType)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#8 private key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an ed25519 key (make one with hardtrail keygen)", k)
	}
	return ek, nil
}

// ParsePublicKey reads a PEM PKIX ed25519 public key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	der, err := onePEM(data, publicPEMType)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an ed25519 key", k)
	}
	return ek, nil
}

func onePEM(data []byte, typ string) ([]byte, error) {
	b, rest := pem.Decode(data)
	switch {
	case b == nil:
		return nil, fmt.Errorf("no PEM block (want %q)", typ)
	case b.Type != typ:
		return nil, fmt.Errorf("PEM block %q, want %q", b.Type, typ)
	case len(b.Headers) > 0:
		return nil, errors.New("PEM block has headers: encrypted keys are not supported")
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, errors.New("data after the PEM block")
	}
	return b.Bytes, nil
}

// maxKeyFile bounds what a key loader reads.
const maxKeyFile = 64 << 10

func readKeyFile(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxKeyFile {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes: not a key file", path, maxKeyFile)
	}
	return data, st, nil
}

// LoadPrivateKey reads a signing key written by GenerateKey. Like ssh, it refuses a key file
// that others can read.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, st, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("sign key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("sign key %s is readable by others (mode %04o): run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("sign key %s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKey reads a public key written by GenerateKey.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, _, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

// Fingerprint names a public key: "SHA256:" and the unpadded base64 of the SHA-256 of its
// PKIX DER encoding, which OpenSSL reproduces:
//
//	openssl pkey -pubin -in KEY.pub -outform DER | openssl dgst -sha256 -binary | base64
//
// (without the trailing '=').
func Fingerprint(k ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		panic("evidence: marshal ed25519 key: " + err.Error())
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
