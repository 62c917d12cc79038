package privatebox

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/cask-ssb/cask/feeds"
	"github.com/cask-ssb/cask/internal/interop"
)

// TestAgainstSSBKeys: ssb-keys unboxes what we seal, and we open what
// ssb-keys boxes (with fresh randomness on both sides).
func TestAgainstSSBKeys(t *testing.T) {
	kit := interop.Kit(t)
	seedA := bytes.Repeat([]byte{0xa1}, 32)
	seedB := bytes.Repeat([]byte{0xb2}, 32)
	a, _ := feeds.KeyPairFromSeed(seedA)
	b, _ := feeds.KeyPairFromSeed(seedB)
	plain := `{"type":"post","text":"hi ☂","recps":["` + a.ID.String() + `","` + b.ID.String() + `"]}`
	ct, err := Seal([]byte(plain), []feeds.FeedRef{a.ID, b.ID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const script = `
const keys = require(process.argv[1] + '/node_modules/ssb-keys')
const a = keys.generate('ed25519', Buffer.from(process.argv[2], 'hex'))
const b = keys.generate('ed25519', Buffer.from(process.argv[3], 'hex'))
const opened = keys.unbox(process.argv[4], b)
const boxed = keys.box({type: 'post', text: 'from js'}, [a.id, b.id])
process.stdout.write(JSON.stringify({opened, boxed}))
`
	cmd := exec.Command("node", "-e", script, kit, hex.EncodeToString(seedA), hex.EncodeToString(seedB), BoxContent(ct))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res struct {
		Opened json.RawMessage `json:"opened"`
		Boxed  string          `json:"boxed"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if string(res.Opened) != plain {
		t.Errorf("ssb-keys unboxed %s, want %s", res.Opened, plain)
	}
	jsCT, err := ParseBoxContent(res.Boxed)
	if err != nil {
		t.Fatal(err)
	}
	for _, kp := range []feeds.KeyPair{a, b} {
		pt, ok := Open(jsCT, kp)
		if !ok || !strings.Contains(string(pt), `"from js"`) {
			t.Errorf("%s: cannot open the ssb-keys box: %q, %v", kp.ID, pt, ok)
		}
	}
}
