//! Chain preflight for `check`: what a valid chain still lacks on this machine (working and
//! config directories, programs on PATH, the default config), and costs no budget counts. These
//! are warnings: the rest may exist where the runner runs, and a cost alone is harmless.

use std::collections::BTreeSet;
use std::path::Path;

use crate::chain::Chain;

/// One line per thing `chain` refers to that is missing here, sorted and without repeats.
pub fn warnings(chain: &Chain) -> BTreeSet<String> {
    let mut warnings = BTreeSet::new();
    for stage in chain.stages() {
        if stage.cost().is_some() && chain.budget().is_none() {
            warnings.insert(format!(
                "stage `{}` has a `cost` but the chain has no `budget`, so nothing limits it; add e.g. `budget = {{ limit = 100, per = \"30d\" }}`",
                stage.name()
            ));
        }
        if !stage.workdir().is_dir() {
            warnings.insert(format!(
                "workdir `{}` does not exist here",
                stage.workdir().display()
            ));
        }
        if let Some(dir) = stage.config_dir()
            && !dir.is_dir()
        {
            warnings.insert(format!(
                "config_dir `{}` does not exist here",
                dir.display()
            ));
        }
        if let Some(program) = stage.run().first().map(|arg| arg.source())
            && !program.contains('{')
            && !program_exists(program, stage.workdir())
        {
            warnings.insert(format!("program `{program}` is not on PATH here"));
        }
    }
    if let Some(config) = chain.default_config()
        && !config.is_file()
    {
        warnings.insert(format!(
            "default_config `{}` does not exist here",
            config.display()
        ));
    }
    warnings
}

fn program_exists(program: &str, workdir: &Path) -> bool {
    if program.contains('/') {
        return workdir.join(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
