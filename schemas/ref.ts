import { Type, type Static, type TSchema } from '@sinclair/typebox'

/** A `$ref` to a shared schema (registered with addSchema) that keeps the referenced static type. */
export function refTo<T extends TSchema> (schema: T): ReturnType<typeof Type.Unsafe<Static<T>>> {
  if (schema.$id === undefined) throw new Error('refTo needs a schema with $id')
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id))
}
