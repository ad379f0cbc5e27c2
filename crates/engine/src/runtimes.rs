//! Finding a language's runtimes on this host, once, at start-up.

use std::path::Path;

use coderun_sandbox::RuntimeMount;

use crate::language::RuntimeDef;

pub(crate) fn resolve_runtime(
    name: &str,
    def: &RuntimeDef,
    base_dir: &Path,
) -> Result<RuntimeMount, String> {
    let source = match (&def.path, def.locate.split_first()) {
        (Some(p), _) => base_dir.join(p),
        (None, Some((cmd, args))) => {
            let out = std::process::Command::new(cmd)
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("runtime {name}: cannot run {cmd}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "runtime {name}: `{}` failed: {}",
                    def.locate.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            std::fs::canonicalize(&text).map_err(|e| format!("runtime {name}: {text}: {e}"))?
        }
        (None, None) => return Err(format!("runtime {name}: neither path nor locate given")),
    };
    if !source.exists() {
        return Err(format!(
            "runtime {name}: {} does not exist",
            source.display()
        ));
    }
    Ok(RuntimeMount {
        source,
        target: def.mount_at.clone(),
        include: def.include.clone(),
        exclude: def.exclude.clone(),
    })
}

/// The coderun binary itself, shown in the box as `/opt/coderun/bin/coderun`.
pub(crate) fn self_mount(exe: &Path) -> Result<RuntimeMount, String> {
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(format!("cannot mount {}", exe.display()));
    };
    if name != "coderun" {
        return Err(format!(
            "the coderun binary must be named coderun, not {name:?}"
        ));
    }
    Ok(RuntimeMount {
        source: dir.to_path_buf(),
        target: "/opt/coderun/bin".into(),
        include: vec![name.to_string_lossy().into_owned()],
        exclude: Vec::new(),
    })
}
