package sshsig

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardtrail/hardtrail/internal/testutil"
)

// keyPair makes a key with ssh-keygen and an allowed_signers file naming it for alice.
func keyPair(t *testing.T, keygen, typ string) (priv, allowed string) {
	dir := t.TempDir()
	priv = filepath.Join(dir, "id")
	args := []string{"-q", "-t", typ, "-N", "", "-C", "alice@example", "-f", priv}
	if typ == "rsa" {
		args = append(args, "-b", "2048")
	}
	if out, err := exec.Command(keygen, args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(priv + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	allowed = filepath.Join(dir, "allowed_signers")
	os.WriteFile(allowed, []byte("alice@example namespaces=\"hardtrail\" "+string(pub)), 0o644)
	return priv, allowed
}

// TestInteropWithSSHKeygen signs with ssh-keygen -Y sign and verifies here, and signs here and
// verifies with ssh-keygen -Y verify, for each key type.
func TestInteropWithSSHKeygen(t *testing.T) {
	keygen := testutil.Tool(t, "ssh-keygen")
	msg := []byte(`{"incident":"INC-1","phase":"after"}`)
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			priv, allowed := keyPair(t, keygen, typ)
			dir := filepath.Dir(priv)
			msgFile := filepath.Join(dir, "msg")
			os.WriteFile(msgFile, msg, 0o644)

			// ssh-keygen signs, we verify.
			if out, err := exec.Command(keygen, "-Y", "sign", "-f", priv, "-n", Namespace, msgFile).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
			}
			theirs, _ := os.ReadFile(msgFile + ".sig")
			key, err := Verify(theirs, msg, Namespace)
			if err != nil {
				t.Fatalf("verify ssh-keygen's signature: %v", err)
			}
			data, _ := os.ReadFile(allowed)
			signers, err := ParseAllowedSigners(allowed, data)
			if err != nil {
				t.Fatal(err)
			}
			if who, err := Allowed(signers, key, "", Namespace); err != nil || who[0] != "alice@example" {
				t.Errorf("allowed: %v %v", who, err)
			}
			if _, err := Verify(theirs, append(msg, ' '), Namespace); !errors.Is(err, ErrBadSignature) {
				t.Errorf("altered message: %v", err)
			}
			if _, err := Verify(theirs, msg, "git"); err == nil {
				t.Error("another namespace verified")
			}

			// We sign, ssh-keygen verifies.
			s, err := LoadSigner(priv)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := Sign(s, Namespace, msg)
			if err != nil {
				t.Fatal(err)
			}
			sigFile := filepath.Join(dir, "ours.sig")
			os.WriteFile(sigFile, ours, 0o644)
			verify := func(m []byte) error {
				cmd := exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "alice@example", "-n", Namespace, "-s", sigFile)
				cmd.Stdin = strings.NewReader(string(m))
				out, err := cmd.CombinedOutput()
				if err != nil {
					return errors.New(string(out))
				}
				return nil
			}
			if err := verify(msg); err != nil {
				t.Fatalf("ssh-keygen -Y verify of our signature: %v", err)
			}
			if err := verify(append(msg, ' ')); err == nil {
				t.Error("ssh-keygen verified our signature over an altered message")
			}
		})
	}
}

func TestAllowedSignersErrors(t *testing.T) {
	_, err := ParseAllowedSigners("as", []byte("# c\n\nbob cert-authority ssh-ed25519 AAAA\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "as:3:") {
		t.Errorf("cert-authority: %v", err)
	}
	if _, err := ParseAllowedSigners("as", []byte("bob ssh-ed25519 notbase64\n")); err == nil || !strings.HasPrefix(err.Error(), "as:1:") {
		t.Errorf("bad key: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		Verify(b, []byte("m"), Namespace)
		ParseAllowedSigners("f", b)
	})
}
