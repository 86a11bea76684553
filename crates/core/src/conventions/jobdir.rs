//! The Slurm job-mapping directory: one file per GPU, named by its GRES index (the line
//! number in `gres.conf`, which `linkwise slurm gres` writes in PCI bus order), holding
//! the id of each job on the GPU, one per line (the HPC job mapping layout dcgm-exporter
//! reads). `linkwise slurm prolog` and `epilog` write it; the exporter reads it for its
//! `slurm_job` label.
//!
//! This module is the format alone: the default path, file names and the file text. The
//! CLI does the writing (under [`LOCK_FILE`], atomically) and the exporter the reading.

/// The directory the hooks write and the exporter reads by default.
pub const DEFAULT_DIR: &str = "/run/linkwise/slurm-jobs";

/// The lock file every writer holds for its read-modify-write. Hidden, like writers'
/// temporary files, so that readers looking for GPU index names skip it.
pub const LOCK_FILE: &str = ".lock";

/// The file name of the GPU with GRES index `index`.
pub fn file_name(index: u32) -> String {
    index.to_string()
}

/// The GRES index a file name names: `<n>`, or `<n>.<m>` for a MIG slice of GPU `<n>`.
/// `None` for any other name (the lock, temporary files, anything else).
pub fn gpu_index(file_name: &str) -> Option<usize> {
    let gres = file_name.split_once('.').map_or(file_name, |(n, _)| n);
    gres.parse().ok()
}

/// Whether a file is hidden (the lock, temporary files): never a mapping file to a
/// writer that edits every file.
pub fn is_hidden(file_name: &str) -> bool {
    file_name.starts_with('.')
}

/// The job ids in a file's text, in file order: each line trimmed, blank lines dropped.
pub fn parse(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// The text of a file holding `jobs`: one id per line, each line ended.
pub fn render<S: AsRef<str>>(jobs: &[S]) -> String {
    let mut text = jobs
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<&str>>()
        .join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_other_names_are_not_gpus() {
        assert_eq!(gpu_index(&file_name(7)), Some(7));
        assert_eq!(gpu_index("3.1"), Some(3));
        assert_eq!(gpu_index(LOCK_FILE), None);
        assert_eq!(gpu_index("notes"), None);
        assert!(is_hidden(LOCK_FILE));
        assert!(!is_hidden(&file_name(0)));
    }

    #[test]
    fn text_round_trips() {
        let jobs = ["42", "43"];
        let text = render(&jobs);
        assert_eq!(text, "42\n43\n");
        assert_eq!(parse(&text).collect::<Vec<_>>(), jobs);
        assert_eq!(parse(" 7 \n\n8\r\n").collect::<Vec<_>>(), ["7", "8"]);
    }
}
