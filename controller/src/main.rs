fn main() {
    eprintln!("oras-controller: not built yet");
    std::process::exit(2);
}
