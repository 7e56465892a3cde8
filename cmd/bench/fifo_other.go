//go:build !unix

package bench

import (
	"errors"
	"os"
)

var errNoFIFO = errors.New("bench: -box needs named pipes (a unix system)")

func makeFIFO(string) error             { return errNoFIFO }
func openFIFO(string) (*os.File, error) { return nil, errNoFIFO }
