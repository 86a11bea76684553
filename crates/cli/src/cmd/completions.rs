//! `linkwise completions SHELL` and `linkwise manpages DIR`: shell completions and man
//! pages generated from the command definitions (the packages ship both).

use std::path::PathBuf;

use clap::CommandFactory;

use crate::exit::BadInput;

/// Print the shell completion script for SHELL.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  linkwise completions bash > /usr/share/bash-completion/completions/linkwise\n  \
linkwise completions zsh > \"${fpath[1]}/_linkwise\"\n  linkwise completions fish > ~/.config/fish/completions/linkwise.fish"
)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Write man pages (section 1): linkwise.1 and one per subcommand (linkwise-fleet-serve.1, ...).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  linkwise manpages /usr/share/man/man1 && man linkwise-rollout-run"
)]
pub struct ManArgs {
    /// The directory to write them into (created).
    dir: PathBuf,
}

pub fn completions(a: CompletionArgs) -> anyhow::Result<()> {
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "linkwise", &mut out);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?;
    Ok(())
}

pub fn manpages(a: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).map_err(|e| BadInput(format!("{}: {e}", a.dir.display())))?;
    let mut cmd = crate::Cli::command();
    cmd.build();
    let mut written = 0;
    write_pages(&cmd, "linkwise", &a.dir, &mut written)?;
    eprintln!(
        "linkwise: {written} man pages written to {}",
        a.dir.display()
    );
    Ok(())
}

/// `cmd`'s page as `name.1`, then its subcommands' as `name-SUB.1`, each written atomically.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    let page = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    linkwise_fsio::write_atomic(&dir.join(format!("{name}.1")), &out)?;
    *written += 1;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
