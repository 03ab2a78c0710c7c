package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRevConfigKindsDecodable walks the config type: every field the
// decoder may meet has a case (no panic at start, as follow: had).
func TestRevConfigKindsDecodable(t *testing.T) {
	dur := reflect.TypeOf(time.Duration(0))
	var bad []string
	var walk func(tp reflect.Type, path string)
	walk = func(tp reflect.Type, path string) {
		switch {
		case tp.Kind() == reflect.Struct:
			for i := range tp.NumField() {
				f := tp.Field(i)
				tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
				if tag == "" || tag == "-" {
					continue
				}
				walk(f.Type, path+"."+tag)
			}
		case tp.Kind() == reflect.Map && tp.Key().Kind() == reflect.String:
			walk(tp.Elem(), path+".<name>")
		case tp.Kind() == reflect.Slice && tp.Elem().Kind() == reflect.String:
		case tp == dur, tp.Kind() == reflect.String, tp.Kind() == reflect.Bool:
		case tp.Kind() >= reflect.Int && tp.Kind() <= reflect.Float64:
		default:
			bad = append(bad, path+" ("+tp.String()+")")
		}
	}
	walk(reflect.TypeOf(config{}), "")
	require := func(ok bool) {
		if !ok {
			t.Fatalf("fields the decoder panics on: %v", bad)
		}
	}
	require(len(bad) == 0)
}
