package nri

import (
	"context"
	"os"
	"testing"

	nrilog "github.com/containerd/nri/pkg/log"
	"github.com/sirupsen/logrus"
)

// quietLogger drops the nri library's info and debug lines (a few dozen
// per plugin connection) and keeps its warnings and errors.
type quietLogger struct{}

func (quietLogger) Debugf(context.Context, string, ...any) {}
func (quietLogger) Infof(context.Context, string, ...any)  {}
func (quietLogger) Warnf(ctx context.Context, f string, a ...any) {
	logrus.WithContext(ctx).Warnf(f, a...)
}
func (quietLogger) Errorf(ctx context.Context, f string, a ...any) {
	logrus.WithContext(ctx).Errorf(f, a...)
}

func TestMain(m *testing.M) {
	nrilog.Set(quietLogger{})
	os.Exit(m.Run())
}
