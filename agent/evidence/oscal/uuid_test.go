package oscal

import (
	"fmt"
	"testing"
)

// TestUUID5 checks the name-based UUID against RFC 4122's DNS namespace: the UUIDv5 of
// "python.org" there is 886313e1-3b8a-5372-9b90-0c9aee199e5d (Python's uuid.uuid5 agrees).
func TestUUID5(t *testing.T) {
	dns := [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	u := uuid5(dns, "python.org")
	got := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	if want := "886313e1-3b8a-5372-9b90-0c9aee199e5d"; got != want {
		t.Fatalf("uuid5 = %s, want %s", got, want)
	}
	if a1, a2, b := UUID("a"), UUID("a"), UUID("b"); a1 != a2 || a1 == b {
		t.Error("UUID is not a function of its name")
	}
}

func TestToken(t *testing.T) {
	for in, want := range map[string]string{
		"ISO27001:2022 A.8.9": "ISO27001_2022_A.8.9",
		"CIS 5.2.10":          "CIS_5.2.10",
		"5.2":                 "_5.2",
		"":                    "_",
		"incident-INC-1":      "incident-INC-1",
	} {
		if got := Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
}
