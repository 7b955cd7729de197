fn main() {
    eprintln!("oras-agent: not built yet");
    std::process::exit(2);
}
