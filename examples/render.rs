//! Rendering a startup script the way Kasm does (Python's `str.format`), with the variables a
//! server gets: `cargo run --example render`.

use kasm_scale::Secret;
use kasm_scale::template::{AdJoin, ScriptVariables, Template};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Parse once (this is where brace mistakes show up, with line and column) ...
    let template = Template::parse(
        "hostnamectl set-hostname {server_hostname}.{domain}\n\
         realm join --one-time-password='{ad_join_credential}' {domain}\n\
         curl -d '{{\"token\":\"{checkin_jwt}\"}}' https://{upstream_auth_address}/api/set_server_status\n",
    )?;
    println!(
        "uses: {}",
        template.field_names().collect::<Vec<_>>().join(", ")
    );
    // ... render per server. The result is a Secret: it holds the token and the join password.
    let vars = ScriptVariables {
        server_id: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9".into(),
        server_hostname: "KASM-0F1E2D3C4B".into(),
        upstream_auth_address: "kasm.example.com".into(),
        checkin_jwt: Secret::new("eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2ln"),
        active_directory: Some(AdJoin {
            domain: "example.local".into(),
            ad_join_credential: Secret::new("Xy7!q9mT2#vL8@pR4"),
        }),
        provider_name: "aws".into(),
        ..ScriptVariables::default()
    };
    let script = template.render(&vars)?;
    println!(
        "{script:?} (Debug hides it); rendered:\n{}",
        script.expose()
    );
    // A pasted PowerShell block with single braces, which Kasm would only report at
    // provisioning time:
    if let Err(e) = Template::parse("if ($x) { Write-Host {server_id} }") {
        println!("refused at configuration time: {e}");
    }
    // An unknown variable is a KeyError when rendering (and at configuration time, where the
    // configuration check renders every script with the variables its servers will get).
    if let Err(e) = Template::parse("awk '{print $4}'")?.render(&vars) {
        println!("refused: {e}");
    }
    Ok(())
}
