//! Prints the OrasCache CustomResourceDefinition as YAML (what `examples/dist/crd.yaml`
//! holds).

fn main() {
    match oras_controller::crd::crd_yaml() {
        Ok(yaml) => print!("{yaml}"),
        Err(error) => {
            eprintln!("crdgen: {error}");
            std::process::exit(1);
        }
    }
}
