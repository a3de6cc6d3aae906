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

// The bridge plugin's comments hold escaped quotes (cleanup deletes by them).
func TestRuleFieldsEscapedQuotes(t *testing.T) {
	got := ruleFields(`-A POSTROUTING -s 10.201.0.2/32 -m comment --comment "name: \"berth-default\" id: \"3b2e\"" -j CNI-ba27`)
	want := []string{"-A", "POSTROUTING", "-s", "10.201.0.2/32", "-m", "comment", "--comment", `name: "berth-default" id: "3b2e"`, "-j", "CNI-ba27"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q", got)
	}
}
