//go:build unix

package hwaccel

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// process is one started encoder as the supervisor sees it; tests replace
// the real one with a fake to exercise restart logic without processes.
type process interface {
	pid() int
	// outputs are the read ends of the pipe layers by layer name.
	outputs() map[string]io.Reader
	// wait blocks until the process has exited and returns its error.
	wait() error
	// closeOutputs releases the read ends; a writer blocked on a full pipe
	// then fails instead of hanging. Idempotent.
	closeOutputs()
}

type startFunc func(ctx context.Context, p *Pipeline, log io.Writer) (process, error)

// pipeBufferBytes is the kernel buffer asked for each output pipe: a 100
// Mbit/s main layer writes 2 MB keyframes, and the default 64 KiB would make
// the encoder wait on the reader for every one.
const pipeBufferBytes = 1 << 20

type osProcess struct {
	cmd     *exec.Cmd
	readers map[string]io.Reader
	files   []*os.File
	once    sync.Once
}

// startOS starts p with a pipe per pipe layer on fd 3 + layer index. ctx
// ending stops it: SIGINT to its process group, SIGKILL after grace.
func startOS(grace time.Duration) startFunc {
	return func(ctx context.Context, p *Pipeline, log io.Writer) (process, error) {
		proc := &osProcess{readers: map[string]io.Reader{}}
		var extra []*os.File
		closeWriters := func() {
			for _, w := range extra {
				if w != nil {
					w.Close()
				}
			}
		}
		for _, o := range p.Outputs {
			if o.Transport != TransportPipe {
				continue
			}
			r, w, err := os.Pipe()
			if err != nil {
				closeWriters()
				proc.closeOutputs()
				return nil, fmt.Errorf("pipe for layer %s: %w", o.Layer, err)
			}
			setPipeSize(w, pipeBufferBytes)
			for len(extra) <= o.FD-3 {
				extra = append(extra, nil)
			}
			extra[o.FD-3] = w
			proc.readers[o.Layer] = r
			proc.files = append(proc.files, r)
		}
		cmd := newCommand(ctx, p.Argv, grace)
		cmd.ExtraFiles = extra
		cmd.Stdout, cmd.Stderr = log, log
		err := cmd.Start()
		// The child has its copies; ours must go or readers never see EOF.
		closeWriters()
		if err != nil {
			proc.closeOutputs()
			return nil, err
		}
		proc.cmd = cmd
		return proc, nil
	}
}

func (p *osProcess) pid() int                      { return p.cmd.Process.Pid }
func (p *osProcess) outputs() map[string]io.Reader { return p.readers }

func (p *osProcess) wait() error {
	err := p.cmd.Wait()
	killGroup(p.cmd)
	return err
}

func (p *osProcess) closeOutputs() {
	p.once.Do(func() {
		for _, f := range p.files {
			f.Close()
		}
	})
}
