// Role: mapping + allow-list.
export { type CurrentUser, createRoleMapper, type RoleMapper } from './map-role.js'
