package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// manPageName is the file cobra's generator writes for c: the command path
// joined by dashes, section 1.
func manPageName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
}

func TestDocsManWritesAPageForEveryCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	a := &app{stdout: &stdout, stderr: &stderr, viper: viper.New(), env: func(k string) (string, bool) {
		if k == "SOURCE_DATE_EPOCH" {
			return "1700000000", true // 2023-11-14: pages must carry this date, not today's
		}
		return "", false
	}}
	root := newRootCmd(a)
	root.SetArgs([]string{"docs", "man", "--dir", dir})
	if code := exitCode(root.ExecuteContext(context.Background()), &stderr); code != exitOK {
		t.Fatalf("dg docs man: exit %d, stderr:\n%s", code, stderr.String())
	}

	// root has now been executed, so cobra's own completion command is in
	// the tree too; every visible command must have its page.
	want := map[string]bool{}
	visitCommands(root, func(c *cobra.Command) { want[manPageName(c)] = true })
	for _, must := range []string{"dg.1", "dg-version.1", "dg-completion.1", "dg-completion-bash.1"} {
		if !want[must] {
			t.Errorf("command tree has no %s; visitCommands misses commands", must)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Name()] = true
	}
	for name := range want {
		if !got[name] {
			t.Errorf("no man page %s", name)
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		if !strings.HasPrefix(page, ".nh\n.TH ") || !strings.Contains(page, "Nov 2023") {
			t.Errorf("%s is not a dated man page:\n%.200s", name, page)
		}
		if strings.Contains(page, "Auto generated") {
			t.Errorf("%s carries the auto-generated (dated) footer", name)
		}
	}
	for name := range got {
		if !want[name] {
			t.Errorf("unexpected man page %s (hidden command leaked?)", name)
		}
	}
	if got["dg-docs.1"] {
		t.Errorf("hidden docs command got a man page")
	}
}

func TestCompletionGeneratesForEveryShell(t *testing.T) {
	t.Parallel()
	// What each shell's script must mention to be that shell's script.
	marker := map[string]string{
		"bash":       "complete -o default -F __start_dg dg",
		"zsh":        "#compdef dg",
		"fish":       "complete -c dg",
		"powershell": "Register-ArgumentCompleter",
	}
	for _, s := range completionShells {
		t.Run(s.shell, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := runContext(context.Background(), []string{"completion", s.shell}, &stdout, &stderr, func(string) (string, bool) { return "", false })
			if code != exitOK {
				t.Fatalf("dg completion %s: exit %d, stderr:\n%s", s.shell, code, stderr.String())
			}
			if stdout.Len() == 0 {
				t.Fatalf("dg completion %s printed nothing", s.shell)
			}
			if m := marker[s.shell]; !strings.Contains(stdout.String(), m) {
				t.Errorf("dg completion %s output lacks %q", s.shell, m)
			}
		})
	}
}

func TestDocsCompletionsWritesEveryScript(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "completions")
	var stdout, stderr bytes.Buffer
	code := runContext(context.Background(), []string{"docs", "completions", "--dir", dir}, &stdout, &stderr, func(string) (string, bool) { return "", false })
	if code != exitOK {
		t.Fatalf("dg docs completions: exit %d, stderr:\n%s", code, stderr.String())
	}
	for _, s := range completionShells {
		st, err := os.Stat(filepath.Join(dir, s.file))
		if err != nil {
			t.Errorf("%s completion: %v", s.shell, err)
			continue
		}
		if st.Size() == 0 {
			t.Errorf("%s completion %s is empty", s.shell, s.file)
		}
	}
}

func TestDocsRequiresDir(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"man", "completions"} {
		var stdout, stderr bytes.Buffer
		code := runContext(context.Background(), []string{"docs", sub}, &stdout, &stderr, func(string) (string, bool) { return "", false })
		if code != exitUsage {
			t.Errorf("dg docs %s without --dir: exit %d, want %d", sub, code, exitUsage)
		}
	}
}
