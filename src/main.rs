fn main() {
    println!("rowplay {}", env!("CARGO_PKG_VERSION"));
}
