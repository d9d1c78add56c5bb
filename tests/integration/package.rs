//! The Debian package (scripts/package-deb), checked the way Debian's tools do: its control data
//! and contents (dpkg-deb), its systemd unit (systemd-analyze verify), and unpacked by dpkg into
//! a fresh root, where the binary runs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_debian_package_builds_verifies_and_unpacks_into_a_fresh_root() {
    let work = std::env::temp_dir().join(format!("tetcore-deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // The test's own build of the binary: what the script packages is the point here.
    let deb = PathBuf::from(
        run(
            Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/package-deb"))
                .args(["--binary", env!("CARGO_BIN_EXE_tetcore-analytics"), "--out"])
                .arg(&work),
        )
        .trim(),
    );
    assert!(deb.ends_with(format!(
        "tetcore-analytics_{}_{}.deb",
        env!("CARGO_PKG_VERSION"),
        run(Command::new("dpkg").arg("--print-architecture")).trim()
    )));

    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for field in [
        "Package: tetcore-analytics",
        &format!("Version: {}", env!("CARGO_PKG_VERSION")),
        "Depends: libc6, libpq5, adduser",
        "postinst",
        "conffiles",
    ] {
        assert!(info.contains(field), "{field} missing from:\n{info}");
    }
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for (mode, path) in [
        ("-rwxr-xr-x", "./usr/bin/tetcore-analytics"),
        (
            "-rw-r--r--",
            "./lib/systemd/system/tetcore-analytics.service",
        ),
        ("-rw-r-----", "./etc/tetcore-analytics/env"),
        ("-rw-r--r--", "./usr/share/doc/tetcore-analytics/copyright"),
        (
            "-rw-r--r--",
            "./usr/share/doc/tetcore-analytics/changelog.Debian.gz",
        ),
        ("-rw-r--r--", "./usr/share/doc/tetcore-analytics/README.md"),
    ] {
        assert!(
            contents
                .lines()
                .any(|l| l.starts_with(mode) && l.contains("root/root") && l.ends_with(path)),
            "{mode} root/root {path} missing from:\n{contents}"
        );
    }

    // A fresh root: an empty dpkg database, nothing else.
    let root = work.join("root");
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-depends", "--unpack"])
        .arg(&deb));
    let status = run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["-s", "tetcore-analytics"]));
    assert!(status.contains("Status: install ok unpacked"), "{status}");
    let version = run(Command::new(root.join("usr/bin/tetcore-analytics")).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("tetcore-analytics {}", env!("CARGO_PKG_VERSION"))
    );
    // A conffile is unpacked beside its place until the package is configured.
    let env = std::fs::read_to_string(root.join("etc/tetcore-analytics/env.dpkg-new")).unwrap();
    assert!(env.lines().any(|l| l == "DATABASE_URL="), "{env}");
    for setting in tetcore_analytics::config::SETTINGS {
        assert!(
            env.contains(setting.name) || setting.name == "RUST_LOG",
            "{}",
            setting.name
        );
    }

    // The unit as systemd reads it (scripts/ensure-build-deps installs systemd-analyze).
    let unit = root.join("lib/systemd/system/tetcore-analytics.service");
    verify_unit(&root);
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "User=tetcore-analytics",
        "Restart=on-failure",
        "EnvironmentFile=/etc/tetcore-analytics/env",
        "ExecStart=/usr/bin/tetcore-analytics",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(text.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let files: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .and_then(|v| v.parse().ok())
        .expect("LimitNOFILE");
    assert!(
        files > tetcore_analytics::config::DEFAULT_WS_MAX_CONNECTIONS + 1024,
        "LimitNOFILE {files} leaves no room for WS_MAX_CONNECTIONS"
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// `systemd-analyze verify` of the unit inside `root` (where its ExecStart exists).
fn verify_unit(root: &Path) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--recursive-errors=no"])
        .arg(format!("--root={}", root.display()))
        .arg("/lib/systemd/system/tetcore-analytics.service")
        .output()
        .expect("systemd-analyze runs (scripts/ensure-build-deps installs systemd)");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !errors.contains("tetcore-analytics.service:"),
        "systemd-analyze verify: {errors}"
    );
}
