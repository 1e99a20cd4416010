# Stream v_user through the installed gem (run from outside the repository).
require "fraiseql_wire"

where = ARGV.fetch(0)
path = FraiseqlWire::Lib::PATH
raise "library from #{path}, expected under #{where}" unless File.realpath(path).start_with?(File.realpath(where))

spec = Gem.loaded_specs.fetch("fraiseql-wire")
raise "gem loaded from #{spec.full_gem_path}" unless spec.full_gem_path.start_with?(ENV.fetch("GEM_HOME"))

FraiseqlWire::Client.open("") do |client|
  ns = client.query("v_user").stream(parse: true) { |s| s.map { |r| r["n"] } }
  raise "rows: #{ns.size}" unless ns.sort == (1..1000).to_a

  begin
    client.query("v_missing").stream
    raise "no error for a missing view"
  rescue FraiseqlWire::ServerError => e
    raise e.inspect unless [e.status, e.code, e.sqlstate] == ["FW_E_SERVER", -6, "42P01"]
  end
  puts "ruby: #{ns.size} rows, library #{path}"
end
