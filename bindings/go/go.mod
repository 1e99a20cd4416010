module github.com/fraiseql/fraiseql-wire/bindings/go

go 1.19
