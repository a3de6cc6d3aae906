package util

import (
	"reflect"
	"testing"
)

func TestRuleFields(t *testing.T) {
	got := ruleFields(`-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ`)
	want := []string{"-A", "POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q", got)
	}
}
