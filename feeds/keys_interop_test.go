package feeds

import (
	"bytes"
	"encoding/base64"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/internal/interop"
)

// TestSecretFileAgainstNode: ssb-keys loads a secret file we wrote, and we
// load one ssb-keys created.
func TestSecretFileAgainstNode(t *testing.T) {
	kit := interop.Kit(t)
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours")
	kp, err := GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSecret(ours, kp); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "js", "secret")
	const script = `
const keys = require(process.argv[1] + '/node_modules/ssb-keys')
const ours = keys.loadSync(process.argv[2])
const theirs = keys.createSync(process.argv[3])
const sig = keys.signObj(ours, {type: 'test'}).signature
console.log(ours.id + ' ' + theirs.id + ' ' + sig)
`
	cmd := exec.Command("node", "-e", script, kit, ours, theirs)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		t.Fatalf("node output %q", out)
	}
	if f[0] != kp.ID.String() {
		t.Errorf("ssb-keys read our file as %s, want %s", f[0], kp.ID)
	}
	js, err := ReadSecret(theirs)
	if err != nil {
		t.Fatalf("reading the ssb-keys file: %v", err)
	}
	if js.ID.String() != f[1] {
		t.Errorf("we read the ssb-keys file as %s, ssb-keys says %s", js.ID, f[1])
	}
	// ssb-keys signs {"type": "test"} as JSON.stringify(obj, null, 2).
	if !bytes.Equal([]byte(f[2]), []byte(b64sig(kp.Sign([]byte("{\n  \"type\": \"test\"\n}"))))) {
		t.Errorf("ssb-keys signature with our key %s differs from ours", f[2])
	}
}

func b64sig(sig []byte) string {
	return base64.StdEncoding.EncodeToString(sig) + ".sig.ed25519"
}
