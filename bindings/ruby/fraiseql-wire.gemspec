# frozen_string_literal: true

# `gem build fraiseql-wire.gemspec` in bindings/ruby, then `gem install fraiseql-wire-*.gem`.
# The gem loads the installed libfraiseql_wire (FW_LIB, FW_LIB_DIR, the system loader, or
# pkg-config: see lib/fraiseql_wire.rb).
Gem::Specification.new do |s|
  s.name = "fraiseql-wire"
  s.version = "0.1.0"
  s.summary = "Stream JSON rows from PostgreSQL with bounded memory (ffi binding of libfraiseql_wire)"
  s.description = "Ruby binding of libfraiseql_wire: streams the data column of a view or table " \
                  "as JSON text (or parsed), with backpressure, pause/resume and cancel."
  s.licenses = ["MIT", "Apache-2.0"]
  s.homepage = "https://github.com/fraiseql/fraiseql-wire"
  s.authors = ["fraiseql-wire contributors"]
  s.files = ["lib/fraiseql_wire.rb", "README.md"]
  s.require_paths = ["lib"]
  s.required_ruby_version = ">= 2.7"
  s.add_runtime_dependency "ffi", ">= 1.15", "< 2"
  s.requirements << "libfraiseql_wire.so.0 (make install), found by the system loader or pkg-config"
end
