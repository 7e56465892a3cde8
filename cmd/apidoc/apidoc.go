// Package apidoc serves an OpenAPI document kept as YAML: loaded with
// kin-openapi, validated, and marshalled to JSON once. The document itself
// is cmd/openapi.yaml; it lives in package cmd, which embeds it and holds
// it to the router, while this package keeps the loading, a concern of its
// own (issue 12), out of cmd.
package apidoc

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

// Load loads an OpenAPI document from YAML (or JSON), resolves its $refs
// and validates it.
func Load(ctx context.Context, yaml []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(yaml)
	if err != nil {
		return nil, fmt.Errorf("apidoc: load: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("apidoc: invalid document: %w", err)
	}
	return doc, nil
}

// Once returns a function that loads and validates yaml at its first call
// and from then on returns the same JSON, or the same error.
func Once(yaml []byte) func() (json.RawMessage, error) {
	return sync.OnceValues(func() (json.RawMessage, error) {
		doc, err := Load(context.Background(), yaml)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("apidoc: marshal: %w", err)
		}
		return b, nil
	})
}
