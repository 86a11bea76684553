//! Prints the subject and key id of every certificate built into a kernel image, and
//! writes each as DER next to OUT (`OUT.N.der`): `cargo run -p linkwise-modsig --example kcerts -- vmlinuz OUT`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(image), Some(out)) = (args.get(1), args.get(2)) else {
        return Err("usage: kcerts IMAGE OUT".into());
    };
    let certs = linkwise_modsig::kernel_image_certs(&std::fs::read(image)?)?;
    for (i, c) in certs.iter().enumerate() {
        println!("{i}: {} {}", c.subject.as_deref().unwrap_or("?"), c.key_id);
        std::fs::write(format!("{out}.{i}.der"), &c.der)?;
    }
    Ok(())
}
