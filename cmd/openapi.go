package cmd

import (
	_ "embed"
	"net/http"

	"whipgate/cmd/apidoc"
)

// openAPIYAML describes every route; openapi_test.go holds it to the
// router and to real responses.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is openapi.yaml loaded, validated and marshalled, once.
var openAPIJSON = apidoc.Once(openAPIYAML)

// openAPI is GET /api/v1/openapi.json: the OpenAPI 3.1 description.
func (a *App) openAPI(w http.ResponseWriter, _ *http.Request) {
	if doc, err := openAPIJSON(); err != nil {
		a.apiError(w, err) // a 500: the embedded document is bad
	} else {
		writeJSON(w, http.StatusOK, doc)
	}
}
