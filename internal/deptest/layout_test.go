package deptest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Package size limits that keep each concern findable (issue 12): a
// package that outgrows them holds more than one concern.
const (
	maxLines   = 3000 // non-test lines of Go
	maxExports = 90   // exported top-level names: functions, methods, types, vars, consts
)

// exempt packages may grow past the limits: the bench is a program of its
// own, not a library.
var exempt = map[string]bool{"cmd/bench": true}

// TestPackageSizes walks the module and checks every package's non-test
// lines and exported names against the limits.
func TestPackageSizes(t *testing.T) {
	root := filepath.Join("..", "..")
	type pkg struct {
		lines, exports int
	}
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		p := pkgs[rel]
		if p == nil {
			p = &pkg{}
			pkgs[rel] = p
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		p.lines += strings.Count(string(src), "\n")
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		p.exports += exportedNames(f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(pkgs))
	for n := range pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := pkgs[n]
		t.Logf("%-24s %5d lines %3d exported names", n, p.lines, p.exports)
		if exempt[n] {
			continue
		}
		if p.lines > maxLines {
			t.Errorf("%s has %d non-test lines, more than %d: split it by concern", n, p.lines, maxLines)
		}
		if p.exports > maxExports {
			t.Errorf("%s exports %d names, more than %d: split it by concern, or unexport what only it uses", n, p.exports, maxExports)
		}
	}
}

// exportedNames counts a file's exported top-level names: functions and
// methods (whatever their receiver), types, variables and constants.
func exportedNames(f *ast.File) int {
	n := 0
	count := func(name *ast.Ident) {
		if name.IsExported() {
			n++
		}
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			count(d.Name)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					count(s.Name)
				case *ast.ValueSpec:
					for _, name := range s.Names {
						count(name)
					}
				}
			}
		}
	}
	return n
}
