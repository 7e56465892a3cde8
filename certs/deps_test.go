package certs

import (
	"os/exec"
	"strings"
	"testing"
)

// certs is a leaf of the module: it imports none of whipgate's other packages.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != "whipgate/certs" && (pkg == "whipgate" || strings.HasPrefix(pkg, "whipgate/")) {
			t.Errorf("certs imports %s; it must depend on no other whipgate package", pkg)
		}
	}
}
