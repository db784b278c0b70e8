ziggy::channels! { request { sql, sql } }

fn main() {}
