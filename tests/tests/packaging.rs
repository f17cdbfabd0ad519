//! What packagers ship beside the binaries: the systemd unit and the D-Bus files.

use std::path::Path;
use std::process::Command;

fn repo(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_unit_scores_an_exposure_of_at_most_2() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/twofoldd.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd; tests/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for twofoldd.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
    println!("proved: systemd-analyze security rates twofoldd.service at {score} (at most 2.0)");
}

#[test]
fn unit_activation_file_and_bus_policy_agree_on_the_name() {
    let name = twofold_protocol::BUS_NAME;
    assert!(repo("systemd/twofoldd.service").contains(&format!("BusName={name}")));
    let activation = repo("dbus/org.twofold.Twofold1.service");
    assert!(
        activation.contains(&format!("Name={name}"))
            && activation.contains("SystemdService=twofoldd.service")
    );
    assert!(repo("dbus/org.twofold.Twofold1.conf").contains(&format!(r#"<allow own="{name}"/>"#)));
    assert!(
        !repo("systemd/twofoldd.service")
            .lines()
            .any(|l| l.trim() == "[Install]"),
        "the daemon is bus-activated"
    );
    println!("proved: unit, activation file and bus policy name {name}");
}
