//! Writes the manual page and the shell completions from the clap definition in
//! `src/cli.rs`, for scripts/package.sh:
//!
//!   cargo run --example package-docs -- OUT_DIR
//!
//! OUT_DIR/tidb-host-agent.8 (uncompressed), and OUT_DIR/completions/ with
//! tidb-host-agent.bash, _tidb-host-agent (zsh) and tidb-host-agent.fish.
//!
//! An example, not a subcommand: clap_mangen and clap_complete are dev-dependencies,
//! so the daemon every host keeps resident carries neither.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::{env, fs, process::ExitCode};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use tidb_host_agent::cli::Cli;

const NAME: &str = "tidb-host-agent";

/// What `--help` cannot say: exit codes, files, and where to read more (roff).
const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB1\fR
A runtime failure.
.TP
\fB2\fR
A usage error on the command line.
.TP
\fB78\fR
An invalid configuration or rule file; every problem is printed with its line and column.
.SH FILES
.TP
\fI/etc/tidb-host-agent/config.toml\fR
The configuration (a conffile). A commented example is in
\fI/usr/share/doc/tidb-host-agent/config.example.toml\fR.
.TP
\fI/var/lib/tidb-host-agent/\fR
The saved state and, by default, the file sink.
.TP
\fI/run/tidb-host-agent/\fR
The unix socket sink.
.TP
\fItidb-host-agent.service\fR
The systemd unit. It runs the daemon as the \fBtidb-host-agent\fR user; \fBsystemctl reload\fR
applies a new configuration after checking it.
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBjournalctl\fR(1),
\fI/usr/share/doc/tidb-host-agent/README.md\fR
"#;

fn main() -> ExitCode {
    let Some(out) = env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: package-docs OUT_DIR");
        return ExitCode::from(2);
    };
    match write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("package-docs: writing to {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn write_all(out: &Path) -> io::Result<()> {
    fs::create_dir_all(out.join("completions"))?;
    let mut page = Vec::new();
    man_page(&mut page)?;
    fs::write(out.join(format!("{NAME}.8")), page)?;
    for shell in [Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), NAME, out.join("completions"))?;
    }
    fs::write(
        out.join("completions").join(format!("{NAME}.bash")),
        bash_completion(),
    )?;
    Ok(())
}

/// clap_complete's bash script, with the labels of its per-command arms spelled the way
/// its dispatch loop spells them. With a `-` in the program's name it writes
/// `tidb__subcmd__host__subcmd__agent__subcmd__check)` for the state
/// `tidb__host__agent__subcmd__check`, so nothing after a command completed
/// (clap-rs/clap#6421, open for clap_complete 4.6.12).
fn bash_completion() -> String {
    let mut script = Vec::new();
    clap_complete::generate(Shell::Bash, &mut Cli::command(), NAME, &mut script);
    String::from_utf8_lossy(&script)
        .replace(&NAME.replace('-', "__subcmd__"), &NAME.replace('-', "__"))
}

/// One page for the program and its commands: the top-level sections from clap_mangen,
/// then each command with its own synopsis and options under COMMANDS (clap_mangen's
/// own subcommand list would point at a page per command, which is not shipped).
fn man_page(w: &mut dyn Write) -> io::Result<()> {
    let cmd = Cli::command();
    let man = Man::new(cmd.clone())
        .section("8")
        .manual("System Administration");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    writeln!(w, ".SH COMMANDS")?;
    writeln!(
        w,
        "Without a command, \\fB{NAME}\\fR runs the daemon, as \\fB{NAME} run\\fR does."
    )?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        writeln!(w, ".SS \"{NAME} {}\"", sub.get_name())?;
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            writeln!(w, "{}", roff_text(&about.to_string()))?;
        }
        let sub_man = Man::new(sub.clone().bin_name(format!("{NAME} {}", sub.get_name())));
        // Each render starts with its own .SH heading: under .SS a paragraph break will do.
        let mut body = Vec::new();
        sub_man.render_synopsis_section(&mut body)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            sub_man.render_options_section(&mut body)?;
        }
        for line in String::from_utf8_lossy(&body).lines() {
            match line.starts_with(".SH ") {
                true => writeln!(w, ".PP")?,
                false => writeln!(w, "{line}")?,
            }
        }
    }
    w.write_all(EXTRA_SECTIONS.as_bytes())?;
    man.render_version_section(w)?;
    Ok(())
}

/// Plain text as a roff paragraph: backslashes escaped, no line read as a request.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e");
    let lines: Vec<String> = escaped
        .lines()
        .map(|l| match l.starts_with(['.', '\'']) {
            true => format!("\\&{l}"),
            false => l.to_owned(),
        })
        .collect();
    format!(".PP\n{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        let mut page = Vec::new();
        man_page(&mut page).unwrap_or_else(|e| panic!("rendering the page: {e}"));
        String::from_utf8(page).unwrap_or_else(|e| panic!("the page is not UTF-8: {e}"))
    }

    #[test]
    fn the_page_is_section_8_and_lists_every_command() {
        let page = page();
        assert!(page.starts_with(".ie"), "roff preamble: {}", &page[..80]);
        assert!(page.contains(".TH tidb-host-agent 8 "), "{page}");
        for sub in Cli::command().get_subcommands() {
            let heading = format!(".SS \"tidb-host-agent {}\"", sub.get_name());
            assert!(page.contains(&heading), "no {heading}:\n{page}");
        }
        // One heading per section: the commands' own .SH lines were dropped.
        assert_eq!(page.matches(".SH SYNOPSIS").count(), 1, "{page}");
        assert_eq!(page.matches(".SH OPTIONS").count(), 1, "{page}");
        for section in [
            "COMMANDS",
            "\"EXIT STATUS\"",
            "FILES",
            "\"SEE ALSO\"",
            "VERSION",
        ] {
            assert!(
                page.contains(&format!(".SH {section}")),
                "no {section}:\n{page}"
            );
        }
        assert!(page.contains(env!("CARGO_PKG_VERSION")), "{page}");
    }

    #[test]
    fn roff_text_escapes_requests_and_backslashes() {
        assert_eq!(roff_text(".x\na\\b"), ".PP\n\\&.x\na\\eb");
    }

    #[test]
    fn every_bash_state_has_its_case_arm() {
        let script = bash_completion();
        let states: Vec<&str> = script
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cmd=\""))
            .filter_map(|l| l.strip_suffix('"'))
            .filter(|state| !state.is_empty())
            .collect();
        assert!(
            states.contains(&"tidb__host__agent__subcmd__check"),
            "{states:?}"
        );
        for state in states {
            let arm = format!("        {state})");
            assert!(script.lines().any(|l| l == arm), "no arm for {state}");
        }
    }

    #[test]
    fn completions_name_the_commands_and_options() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        write_all(dir.path()).unwrap_or_else(|e| panic!("writing: {e}"));
        for file in [
            "tidb-host-agent.bash",
            "_tidb-host-agent",
            "tidb-host-agent.fish",
        ] {
            let text = fs::read_to_string(dir.path().join("completions").join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            // Long options without their dashes: fish writes `-l connect`.
            for word in ["explain", "config", "connect", "version"] {
                assert!(text.contains(word), "{file} lacks {word}");
            }
        }
    }
}
